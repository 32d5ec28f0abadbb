//! `cargo run -p scorelab-kernels --example conv_bench [-- N C_IN C_OUT H K REPS]`: the
//! 2-D convolution (stride 1, padding K/2) on burn-flex, each pass of this crate's
//! kernels (`ConvKernel for Flex`: forward, input, weight and bias gradients) beside
//! burn-flex's own operation for it (`ModuleOps`: `conv2d`, `conv2d_x_backward`,
//! `conv2d_weight_backward`, `conv2d_bias_backward`), alternating, reporting medians
//! and the ratio burn-flex/ours (above 1: ours is faster).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::tensor::TensorData;
use burn::tensor::ops::ConvOptions;
use scorelab_kernels::conv::ConvKernel;
use std::time::Instant;

/// Deterministic values in about [−2.3, 2.3].
fn random(shape: [usize; 4]) -> FlexTensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.7548).sin() * 1.3 + (i as f64 * 0.231).cos()) as f32)
        .collect();
    FlexTensor::from_data(TensorData::new(v, shape))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn seconds(f: &mut dyn FnMut() -> FlexTensor) -> f64 {
    let t0 = Instant::now();
    let out = f();
    let _ = out.into_data();
    t0.elapsed().as_secs_f64()
}

/// Alternate `ours` and `theirs` `reps` times; print the medians and their ratio.
fn compare(
    name: &str,
    reps: usize,
    ours: &mut dyn FnMut() -> FlexTensor,
    theirs: &mut dyn FnMut() -> FlexTensor,
) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        b.push(seconds(theirs));
        a.push(seconds(ours));
    }
    let (a, b) = (median(a), median(b));
    println!(
        "{name:>8}: ours {:7.3} ms, burn-flex {:7.3} ms, burn-flex/ours {:.2}",
        a * 1e3,
        b * 1e3,
        b / a
    );
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("sizes are whole numbers"))
        .collect();
    let d = [32, 16, 16, 28, 3, 20];
    let [n, ci, co, h, k, reps] = [0, 1, 2, 3, 4, 5].map(|i| a.get(i).copied().unwrap_or(d[i]));
    println!(
        "[{n}, {ci}, {h}, {h}] → {co} channels, {k}×{k}, stride 1, padding {}",
        k / 2
    );
    let o = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
    let (x, w, dy) = (
        random([n, ci, h, h]),
        random([co, ci, k, k]),
        random([n, co, h + 2 * (k / 2) + 1 - k, h + 2 * (k / 2) + 1 - k]),
    );
    let b = FlexTensor::from_data(TensorData::new(vec![0.5f32; co], [co]));
    compare(
        "forward",
        reps,
        &mut || Flex::conv_forward(x.clone(), w.clone(), Some(b.clone()), o.clone()),
        &mut || Flex::conv2d(x.clone(), w.clone(), Some(b.clone()), o.clone()),
    );
    compare(
        "input",
        reps,
        &mut || Flex::conv_x_grad(x.clone(), w.clone(), dy.clone(), o.clone()),
        &mut || Flex::conv2d_x_backward(x.clone(), w.clone(), dy.clone(), o.clone()),
    );
    compare(
        "weight",
        reps,
        &mut || Flex::conv_weight_grad(x.clone(), w.clone(), dy.clone(), o.clone()),
        &mut || Flex::conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), o.clone()),
    );
    compare(
        "bias",
        reps,
        &mut || Flex::conv_bias_grad(x.clone(), b.clone(), dy.clone()),
        &mut || Flex::conv2d_bias_backward(x.clone(), b.clone(), dy.clone()),
    );
}
