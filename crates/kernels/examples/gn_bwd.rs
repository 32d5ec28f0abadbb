//! `cargo run [--release] -p scorelab-kernels --example gn_bwd [-- REPS]`: the fused
//! GroupNorm + affine + SiLU backward pass on burn-flex alone (`GroupNormKernel::
//! gn_backward`, no autodiff), 8 groups, at the demo UNet's shapes (batch 32: 16
//! channels at 28×28, 32 at 14×14 and 7×7) and at `[32, 64, 32, 32]`; median of REPS
//! (default 40) in ms and per element.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use scorelab_kernels::GroupNormKernel;

fn tensor(v: &[f32], shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v.to_vec(), shape))
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    for (nb, c, h) in [
        (32usize, 16usize, 28usize),
        (32, 32, 14),
        (32, 32, 7),
        (32, 64, 32),
    ] {
        let n = nb * c * h * h;
        let xs: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let dys: Vec<f32> = (0..n)
            .map(|i| ((i * 104729 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let shape = vec![nb, c, h, h];
        let (g, b) = (vec![1.0f32; c], vec![0.0f32; c]);
        let mut ts: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let x = tensor(&xs, shape.clone());
                let dy = tensor(&dys, shape.clone());
                let (gt, bt) = (tensor(&g, vec![c]), tensor(&b, vec![c]));
                let s = std::time::Instant::now();
                let r = Flex::gn_backward(x, gt, bt, dy, 8, 1e-5, true);
                let t = s.elapsed().as_secs_f64() * 1e3;
                drop(r);
                t
            })
            .collect();
        ts.sort_by(f64::total_cmp);
        let m = ts[ts.len() / 2];
        println!(
            "{shape:?}: {m:.3} ms, {:.2} ns per element",
            m * 1e6 / n as f64
        );
    }
}
