//! SiLU as one operation and one autodiff node, against its f64 definition: on burn-flex
//! and (with `--features wgpu`) the cubecl kernel on wgpu.

mod common;

use burn::tensor::{Device, Tensor, TensorData};

/// y = x·s and ∂L/∂x = w·s·(1 + x(1 − s)) for L = Σ y·w, s = 1/(1 + e^−x), in f64,
/// each with the size of its terms: |x|·s, and |w|·s·(1 + |x|(1 − s)) (the bracket
/// cancels near x ≈ −1.28, so the error is bounded against its terms, not its value).
fn reference(x: &[f64], w: &[f64]) -> Vec<[f64; 4]> {
    x.iter()
        .zip(w)
        .map(|(&v, &w)| {
            let s = 1.0 / (1.0 + (-v).exp());
            let terms = w.abs() * s * (1.0 + v.abs() * (1.0 - s));
            [v * s, v.abs() * s, w * s * (1.0 + v * (1.0 - s)), terms]
        })
        .collect()
}

fn run(x: &[f64], w: &[f64], dev: &Device) -> (Vec<f32>, Vec<f32>) {
    let dev = dev.clone().autodiff();
    let t = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|&a| a as f32).collect();
        let n = v.len();
        Tensor::<1>::from_data(TensorData::new(v, [n]), &dev)
    };
    let xt = t(x).require_grad();
    let y = scorelab_kernels::silu(xt.clone());
    let grads = (y.clone() * t(w)).sum().backward();
    let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    (v(y), v(xt.grad(&grads).unwrap()))
}

/// Each element is a handful of f32 operations (2⁻²⁴ ≈ 6e−8 each) and e^x within
/// 2.4e−7: 1e−6 of the terms' size (at least 1e−3, so that the saturated tails are
/// compared absolutely) bounds both; a wrong derivative is off by O(1). 70 000 values over [−40, 40] span several
/// parallel chunks, including the saturated tails.
#[test]
fn silu_matches_its_definition_forward_and_backward() {
    let (x, w) = inputs();
    let (gy, gdx) = run(&x, &w, &Device::flex());
    check(&x, &w, (&gy, &gdx), |_| 1e-6);
    // The same bits on 1 and 3 threads.
    let on = |n: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap();
        pool.install(|| run(&x, &w, &Device::flex()))
    };
    assert_eq!(on(1), on(3));
}

/// 70 000 values over [−40, 40] and the upstream gradient.
fn inputs() -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..70_000)
        .map(|i| -40.0 + 80.0 * i as f64 / 69_999.0)
        .collect();
    let w: Vec<f64> = (0..70_000).map(|i| (i as f64 * 0.37).sin()).collect();
    (x, w)
}

/// y and ∂x within `tol(x)` of the terms' size (at least 1e−3) at every element.
fn check(x: &[f64], w: &[f64], (gy, gdx): (&[f32], &[f32]), tol: impl Fn(f64) -> f64) {
    for (i, r) in reference(x, w).iter().enumerate() {
        for (name, g, v, scale) in [("y", gy[i], r[0], r[1]), ("dx", gdx[i], r[2], r[3])] {
            let err = (g as f64 - v).abs() / scale.max(1e-3);
            assert!(err < tol(x[i]), "{name}[{i}] (x = {}): {g} vs {v}", x[i]);
        }
    }
}

/// The cubecl kernel on wgpu. Its e^x is the shader's `exp`, which Vulkan allows
/// 3 + 2|x| ulp of error; s = 1/(1 + e^−x) carries that relative error δ, and y and ∂x
/// at most 2δ plus a handful of f32 roundings: (2·(3 + 2|x|) + 10)·2⁻²⁴ of the terms.
#[cfg(feature = "wgpu")]
#[test]
fn the_cube_kernel_matches_the_definition_forward_and_backward() {
    let Some(dev) = common::wgpu_device() else {
        return;
    };
    let (x, w) = inputs();
    let (gy, gdx) = run(&x, &w, &dev);
    check(&x, &w, (&gy, &gdx), |v| {
        (2.0 * (3.0 + 2.0 * v.abs()) + 10.0) * 2f64.powi(-24)
    });
}
