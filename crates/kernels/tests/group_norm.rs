//! The fused GroupNorm + affine (+ SiLU) against its f64 definition: the burn-flex
//! kernel through the autodiff node (forward and the three gradients), the composed
//! fallback, the kernel to the bit across thread counts, and (with `--features wgpu`)
//! the cubecl kernel on wgpu.

mod common;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Device, Tensor, TensorData};
use scorelab_kernels::{GroupNormKernel, composed, group_norm_act};

/// A case: shape, groups, SiLU, and deterministic inputs (x with an offset mean so that
/// centring matters, γ around 1, β, and an upstream gradient w).
struct Case {
    shape: Vec<usize>,
    groups: usize,
    silu: bool,
    x: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    w: Vec<f64>,
}

fn wave(n: usize, seed: f64, scale: f64, offset: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            offset
                + scale
                    * ((i as f64 * 0.7548 + seed).sin() * 1.3
                        + (i as f64 * 0.231 + 2.0 * seed).cos())
        })
        .collect()
}

fn case(shape: &[usize], groups: usize, silu: bool) -> Case {
    let (len, c) = (shape.iter().product::<usize>(), shape[1]);
    Case {
        shape: shape.to_vec(),
        groups,
        silu,
        x: wave(len, 0.3, 1.5, 2.0),
        gamma: wave(c, 1.1, 0.4, 1.0),
        beta: wave(c, 2.3, 0.5, 0.1),
        w: wave(len, 3.7, 1.0, 0.0),
    }
}

const EPS: f64 = 1e-5;

/// The definition in f64: y, and (∂x, ∂γ, ∂β) of L = Σ y·w.
fn reference(k: &Case) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, c) = (k.shape[0], k.shape[1]);
    let plane = k.x.len() / (n * c);
    let cpg = c / k.groups;
    let m = (cpg * plane) as f64;
    let (mut y, mut dx) = (vec![0.0; k.x.len()], vec![0.0; k.x.len()]);
    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
    for blk in 0..n * k.groups {
        let r = blk * cpg * plane..(blk + 1) * cpg * plane;
        let xs = &k.x[r.clone()];
        let mean = xs.iter().sum::<f64>() / m;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
        let rstd = 1.0 / (var + EPS).sqrt();
        let mut g = vec![0.0; xs.len()];
        for (i, &v) in xs.iter().enumerate() {
            let ch = (blk % k.groups) * cpg + i / plane;
            let a = (v - mean) * rstd;
            let z = a * k.gamma[ch] + k.beta[ch];
            let s = 1.0 / (1.0 + (-z).exp());
            y[r.start + i] = if k.silu { z * s } else { z };
            let dz = k.w[r.start + i]
                * if k.silu {
                    s * (1.0 + z * (1.0 - s))
                } else {
                    1.0
                };
            dg[ch] += dz * a;
            db[ch] += dz;
            g[i] = dz * k.gamma[ch];
        }
        let s1 = g.iter().sum::<f64>() / m;
        let s2 = g
            .iter()
            .zip(xs)
            .map(|(g, v)| g * (v - mean) * rstd)
            .sum::<f64>()
            / m;
        for (i, &v) in xs.iter().enumerate() {
            dx[r.start + i] = (g[i] - s1 - (v - mean) * rstd * s2) * rstd;
        }
    }
    (y, dx, dg, db)
}

/// max |a − b| / max |b|.
fn rel(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - y).abs()))
        / scale
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// y and the three gradients from the Tensor API on `dev` with autodiff.
fn through_autodiff(k: &Case, dev: &Device) -> [Vec<f32>; 4] {
    let dev = dev.clone().autodiff();
    let data = |v: &[f64], shape: Vec<usize>| TensorData::new(f32s(v), shape);
    let x = Tensor::<4>::from_data(data(&k.x, padded(&k.shape)), &dev).require_grad();
    let c = k.gamma.len();
    let gamma = Tensor::<1>::from_data(data(&k.gamma, vec![c]), &dev).require_grad();
    let beta = Tensor::<1>::from_data(data(&k.beta, vec![c]), &dev).require_grad();
    let w = Tensor::<4>::from_data(data(&k.w, padded(&k.shape)), &dev);
    let y = group_norm_act(
        x.clone(),
        gamma.clone(),
        beta.clone(),
        k.groups,
        EPS,
        k.silu,
    );
    let grads = (y.clone() * w).sum().backward();
    let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    let flat = |t: Tensor<4>| v(t.flatten(0, 3));
    [
        flat(y),
        flat(x.grad(&grads).unwrap()),
        v(gamma.grad(&grads).unwrap()),
        v(beta.grad(&grads).unwrap()),
    ]
}

/// A rank-3 or rank-4 shape as rank 4 (trailing 1s), the kernel's layout unchanged.
fn padded(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    s.resize(4, 1);
    s
}

fn cases() -> Vec<Case> {
    vec![
        case(&[2, 6, 5, 7], 3, true),
        case(&[2, 6, 5, 7], 3, false),
        case(&[3, 4, 9], 4, true),
        case(&[1, 8, 2, 2], 1, true),
    ]
}

/// Both sides round to f32 differently: the kernel keeps its statistics in f64 and
/// rounds each element through about ten f32 operations (2^−24 ≈ 6e−8 each), so y is
/// within ~1e−6 of the largest |y|; the gradients add a mean over M ≤ 70 values and a
/// difference of terms of the size of the largest, about 10× that. 1e−5 and 1e−4 bound
/// them with margin; a wrong formula is off by O(1).
#[test]
fn the_flex_kernel_matches_the_f64_definition_forward_and_backward() {
    for k in cases() {
        let (y, dx, dg, db) = reference(&k);
        let [gy, gdx, gdg, gdb] = through_autodiff(&k, &Device::flex());
        let what = format!("{:?} groups {} silu {}", k.shape, k.groups, k.silu);
        assert!(rel(&gy, &y) < 1e-5, "{what}: y off by {}", rel(&gy, &y));
        for (name, got, want) in [("x", &gdx, &dx), ("gamma", &gdg, &dg), ("beta", &gdb, &db)] {
            let e = rel(got, want);
            assert!(e < 1e-4, "{what}: ∂{name} off by {e}");
        }
    }
}

/// The cubecl kernel (wgpu; lavapipe without a GPU) against the same definition. Its
/// statistics are f32 (WGSL has no f64): each unit adds ⌈M/256⌉ values in sequence and
/// the tree 8 levels, at most 4 + 8 = 12 roundings (2⁻²⁴ each) of sums of |x| ≤ 5.5 for
/// the largest block here (M = 1 024), so μ and σ² move by ≲ 12·6e−8·5.5 ≈ 4e−6, which
/// reaches y through rstd·γ ≈ 0.6·1.4 as ≈ 3e−6, 1e−6 of max |y| ≈ 3: inside the same
/// bounds (1e−5, 1e−4). Two runs give the same bits.
#[cfg(feature = "wgpu")]
#[test]
fn the_cube_kernel_matches_the_f64_definition_forward_and_backward() {
    let Some(dev) = common::wgpu_device() else {
        return;
    };
    let mut all = cases();
    all.push(case(&[2, 8, 16, 16], 2, true));
    all.push(case(&[3, 32, 4, 4], 8, false));
    for k in all {
        let (y, dx, dg, db) = reference(&k);
        let got = through_autodiff(&k, &dev);
        let what = format!("wgpu {:?} groups {} silu {}", k.shape, k.groups, k.silu);
        assert!(
            rel(&got[0], &y) < 1e-5,
            "{what}: y off by {}",
            rel(&got[0], &y)
        );
        for (name, got, want) in [
            ("x", &got[1], &dx),
            ("gamma", &got[2], &dg),
            ("beta", &got[3], &db),
        ] {
            let e = rel(got, want);
            assert!(e < 1e-4, "{what}: ∂{name} off by {e}");
        }
        assert_eq!(
            got,
            through_autodiff(&k, &dev),
            "{what}: a second run differs"
        );
    }
}

fn flex(v: &[f64], shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(f32s(v), shape.to_vec()))
}

fn values(t: FlexTensor) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The composed fallback (what backends without a kernel run), called on Flex's
/// primitives, against the same definition and bounds.
#[test]
fn the_composed_fallback_matches_the_f64_definition() {
    for k in cases() {
        let (y, dx, dg, db) = reference(&k);
        let c = k.shape[1];
        let inputs = || {
            (
                flex(&k.x, &k.shape),
                flex(&k.gamma, &[c]),
                flex(&k.beta, &[c]),
            )
        };
        let (x, g, b) = inputs();
        let got = values(composed::forward::<Flex>(x, g, b, k.groups, EPS, k.silu));
        assert!(
            rel(&got, &y) < 1e-5,
            "{:?}: y off by {}",
            k.shape,
            rel(&got, &y)
        );
        let (x, g, b) = inputs();
        let d = composed::backward::<Flex>(x, g, b, flex(&k.w, &k.shape), k.groups, EPS, k.silu);
        for (name, got, want) in [
            ("x", d.x, &dx),
            ("gamma", d.gamma, &dg),
            ("beta", d.beta, &db),
        ] {
            let e = rel(&values(got), want);
            assert!(e < 1e-4, "{:?}: ∂{name} off by {e}", k.shape);
        }
    }
}

/// The f64 definition's gradients against central differences of its own forward pass
/// (step 1e−5: truncation O(h²) ≈ 1e−10, rounding ≈ 1e−16/h ≈ 1e−11), so that the
/// kernels are not checked against a formula that shares their mistake.
#[test]
fn the_f64_gradients_match_central_differences() {
    let k = case(&[2, 4, 3], 2, true);
    let (_, dx, dg, db) = reference(&k);
    let loss = |k: &Case| -> f64 {
        let (y, ..) = reference(k);
        y.iter().zip(&k.w).map(|(a, b)| a * b).sum()
    };
    let h = 1e-5;
    let numeric = |field: fn(&mut Case) -> &mut Vec<f64>, i: usize| {
        let (mut up, mut down) = (case(&[2, 4, 3], 2, true), case(&[2, 4, 3], 2, true));
        field(&mut up)[i] += h;
        field(&mut down)[i] -= h;
        (loss(&up) - loss(&down)) / (2.0 * h)
    };
    for (i, want) in dx.iter().enumerate() {
        assert!((numeric(|k| &mut k.x, i) - want).abs() < 1e-6, "∂x[{i}]");
    }
    for (i, (g, b)) in dg.iter().zip(&db).enumerate() {
        assert!((numeric(|k| &mut k.gamma, i) - g).abs() < 1e-6, "∂γ[{i}]");
        assert!((numeric(|k| &mut k.beta, i) - b).abs() < 1e-6, "∂β[{i}]");
    }
}

/// The kernel's output and gradients are the same bits on 1 and 3 threads (a shape
/// with many blocks, so that the split differs).
#[test]
fn the_flex_kernel_does_not_depend_on_the_thread_count() {
    let k = case(&[8, 16, 6, 6], 4, true);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| through_autodiff(&k, &Device::flex()))
    };
    assert_eq!(on(1), on(3));
}

#[test]
fn exp_f32_is_within_two_ulp_of_exp() {
    let mut worst = 0.0f64;
    for i in 0..=200_000 {
        let x = -87.0 + 175.0 * i as f64 / 200_000.0;
        let got = scorelab_kernels::math::exp_f32(x as f32) as f64;
        let want = (x as f32 as f64).exp();
        worst = worst.max((got - want).abs() / want);
    }
    assert!(worst < 2.4e-7, "relative error {worst}");
    assert!(scorelab_kernels::math::exp_f32(f32::NAN).is_nan());
    // Only Flex's own kernel is exercised by the default methods' override.
    let _ = <Flex as GroupNormKernel>::gn_forward;
}
