//! `cargo run -p scorelab-kernels --example gn_bench [-- [fwd] N C H GROUPS REPS]`:
//! GroupNorm + affine + SiLU, forward and backward on burn-flex with autodiff, as the
//! kernel (one node) against the composition the UNet used before it (burn's
//! `batch_norm_train` over `[1, N·G, …]`, the affine as a depthwise 1×1 convolution,
//! then `silu`), alternating, reporting medians and their ratio. With `fwd` first: the
//! kernel's GroupNorm forward alone (no SiLU), without autodiff, median of REPS.

use burn::tensor::module::{batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, activation::silu};
use std::time::Instant;

fn composed(x: Tensor<4>, g: Tensor<1>, b: Tensor<1>, groups: usize) -> Tensor<4> {
    let dims = x.dims();
    let rows = dims[0] * groups;
    let dev = x.device();
    let flat = x.reshape([1, rows, dims.iter().product::<usize>() / rows]);
    let unit = Tensor::<1>::ones([rows], &dev);
    let zero = Tensor::<1>::zeros([rows], &dev);
    let y = batch_norm_train(flat, unit, zero, 1e-5)
        .output
        .reshape(dims);
    let c = dims[1];
    let planes = y.reshape([dims[0], c, dims[2] * dims[3], 1]);
    let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], c);
    silu(conv2d(planes, g.reshape([c, 1, 1, 1]), Some(b), opts).reshape(dims))
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Seconds of `f`, `reps` times.
fn timed(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect()
}

fn forward_only([n, c, h, groups, reps]: [usize; 5]) {
    let dev = Device::flex();
    let x = Tensor::<4>::random([n, c, h, h], Distribution::Normal(1.0, 2.0), &dev);
    let (g, b) = (Tensor::<1>::ones([c], &dev), Tensor::<1>::zeros([c], &dev));
    let t = timed(reps, || {
        let y =
            scorelab_kernels::group_norm_act(x.clone(), g.clone(), b.clone(), groups, 1e-5, false);
        let _ = y.narrow(0, 0, 1).into_data();
    });
    println!(
        "[{n}, {c}, {h}, {h}] groups {groups}: forward {:.3} ms",
        median(t) * 1e3
    );
}

fn against_composed([n, c, h, groups, reps]: [usize; 5]) {
    let dev = Device::flex().autodiff();
    let x = Tensor::<4>::random([n, c, h, h], Distribution::Normal(1.0, 2.0), &dev).require_grad();
    let g = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.2), &dev).require_grad();
    let b = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.2), &dev).require_grad();
    let w = Tensor::<4>::random([n, c, h, h], Distribution::Normal(0.0, 1.0), &dev);
    let run = |kernel: bool| {
        let y = match kernel {
            true => scorelab_kernels::group_norm_act(
                x.clone(),
                g.clone(),
                b.clone(),
                groups,
                1e-5,
                true,
            ),
            false => composed(x.clone(), g.clone(), b.clone(), groups),
        };
        let grads = (y * w.clone()).sum().backward();
        let _ = x.grad(&grads).unwrap().into_data();
    };
    let (mut tk, mut tc) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        tc.extend(timed(1, || run(false)));
        tk.extend(timed(1, || run(true)));
    }
    let (mk, mc) = (median(tk), median(tc));
    println!(
        "[{n}, {c}, {h}, {h}] groups {groups}: kernel {:.2} ms, composed {:.2} ms, composed/kernel {:.2}",
        mk * 1e3,
        mc * 1e3,
        mc / mk
    );
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let fwd = args.first().is_some_and(|a| a == "fwd");
    if fwd {
        args.remove(0);
    }
    let a: Vec<usize> = args.iter().map(|s| s.parse().unwrap()).collect();
    let defaults = if fwd {
        [32, 64, 32, 8, 200]
    } else {
        [32, 64, 28, 32, 20]
    };
    let sizes = [0, 1, 2, 3, 4].map(|i| a.get(i).copied().unwrap_or(defaults[i]));
    match fwd {
        true => forward_only(sizes),
        false => against_composed(sizes),
    }
}
