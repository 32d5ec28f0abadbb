//! The exact identities of `ntk-theory.md`, item 1, and the closed-form versus explicit
//! kernel-GD equality.

use ndarray::{Array2, ArrayView1, Axis};
use ntk_theory::kernel_gd::{Spectral, alpha_gd_explicit, alpha_krr, predict};
use ntk_theory::kernels::Kernel;
use ntk_theory::network::TwoLayerRelu;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// `n` rows of `d` standard normal values.
fn randn(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, d), || StandardNormal.sample(&mut rng))
}

/// κ of two points given as slices.
fn ev(k: Kernel, a: &[f64], b: &[f64]) -> f64 {
    k.eval(ArrayView1::from(a), ArrayView1::from(b))
}

#[test]
fn analytic_ntk_identities() {
    let z = [0.3, -1.2, 1.0];
    let zp = [1.5, 0.2, 1.0];
    let k = Kernel::Ntk1;
    let nz2: f64 = z.iter().map(|v| v * v).sum();
    assert!((ev(k, &z, &z) - nz2 / 2.0).abs() < 1e-15);
    let neg: Vec<f64> = z.iter().map(|v| -v).collect();
    assert!(ev(k, &z, &neg).abs() < 1e-15);
    for c in [0.1, 2.0, 7.5] {
        let cz: Vec<f64> = z.iter().map(|v| c * v).collect();
        assert!((ev(k, &cz, &zp) - c * ev(k, &z, &zp)).abs() < 1e-13);
    }
    // Both layers: κ₂(z, z) = ‖z‖²/2 + ‖z‖²/2 = ‖z‖².
    assert!((ev(Kernel::Ntk2, &z, &z) - nz2).abs() < 1e-13);
    // Arc-cosine kernels: k₀(z, z) = 1, k₁(z, z) = ‖z‖², and κ₁ = zᵀz'·k₀/2.
    assert!((ev(Kernel::ArcCos0, &z, &z) - 1.0).abs() < 1e-15);
    assert!((ev(Kernel::ArcCos1, &z, &z) - nz2).abs() < 1e-13);
    let ip: f64 = z.iter().zip(&zp).map(|(a, b)| a * b).sum();
    assert!((ev(k, &z, &zp) - ip * ev(Kernel::ArcCos0, &z, &zp) / 2.0).abs() < 1e-15);
    // Gram matrices are symmetric.
    let pts = randn(20, 3, 1);
    let h = k.gram(pts.view()).unwrap();
    assert_eq!(h, h.t());
}

#[test]
fn symmetric_initialisation_and_empirical_ntk() {
    let net = TwoLayerRelu::symmetric(200, 3, 2, 0).unwrap();
    let z = randn(10, 3, 2);
    assert!(
        net.forward(z.view()).iter().all(|v| *v == 0.0),
        "f₀ must vanish identically"
    );
    // The empirical NTK equals the inner products of per-sample gradients, per output.
    let h = net.empirical_ntk(z.view());
    for k in 0..2 {
        for i in 0..10 {
            for j in 0..10 {
                let (gi, gj) = (net.grad(z.row(i), k), net.grad(z.row(j), k));
                let ip: f64 = gi.iter().zip(&gj).map(|(a, b)| a * b).sum();
                assert!((ip - h[[i, j]]).abs() < 1e-12, "({i}, {j}) output {k}");
            }
        }
    }
    assert!(TwoLayerRelu::symmetric(3, 3, 1, 0).is_err());
}

fn op_norm(a: &Array2<f64>) -> f64 {
    let n = a.nrows();
    let m = faer::Mat::from_fn(n, n, |i, j| a[[i, j]]);
    m.self_adjoint_eigenvalues(faer::Side::Lower)
        .unwrap()
        .iter()
        .fold(0.0f64, |acc, v| acc.max(v.abs()))
}

#[test]
fn empirical_ntk_converges_to_the_analytic_one_as_width_grows() {
    // n = 50 points z ~ N(0, I₃); ‖H_m − H‖_op should fall as m^{−1/2}.
    let z = randn(50, 3, 3);
    let h = Kernel::Ntk1.gram(z.view()).unwrap();
    let mut pts = Vec::new();
    for m in [100usize, 1_000, 10_000] {
        // Average over 3 initialisations to steady the estimate.
        let err = (0..3u64)
            .map(|s| {
                let hm = TwoLayerRelu::symmetric(m, 3, 1, 10 + s)
                    .unwrap()
                    .empirical_ntk(z.view());
                op_norm(&(hm - &h))
            })
            .sum::<f64>()
            / 3.0;
        pts.push((m as f64, err));
    }
    let slope = score_core::metrics::loglog_slope(&pts);
    eprintln!(
        "‖H_m − H‖_op for m = 1e2, 1e3, 1e4: {pts:?}; ‖H‖_op = {:.2}; slope {slope:.3}",
        op_norm(&h)
    );
    assert!((-0.6..=-0.4).contains(&slope), "{slope}");
}

#[test]
fn closed_form_kernel_gd_equals_explicit_steps() {
    let n = 60;
    let z = randn(n, 3, 4);
    let y = randn(n, 2, 5);
    let h = Kernel::Ntk1.gram(z.view()).unwrap();
    let sp = Spectral::new(h.view(), y.view()).unwrap();
    let eta = 1.0;
    let closed = sp.alpha_gd(eta, 1000);
    let explicit = alpha_gd_explicit(h.view(), y.view(), eta, 1000).unwrap();
    let diff = closed
        .iter()
        .zip(&explicit)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("max |closed-form − explicit| after 1000 steps: {diff:.2e}");
    // The spec reports ≈ 1e-13; allow 1e-10 for the accumulated round-off of 1000 steps.
    assert!(diff < 1e-10, "{diff}");
    // Gradient flow at τ = kη agrees with GD to first order in η/N·λ_max.
    let flow = sp.alpha_flow(eta * 1000.0);
    let fd = flow
        .iter()
        .zip(&closed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        fd < 0.1 * closed.iter().map(|v| v.abs()).fold(0.0, f64::max),
        "{fd}"
    );
    // Ridge regression with a tiny γ interpolates: H α ≈ Y; predictions at the training
    // inputs equal the fitted values.
    let a = alpha_krr(h.view(), y.view(), 1e-10).unwrap();
    let fitted = predict(h.view(), a.view());
    let err = fitted
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-4, "{err}");
    assert!(
        sp.fitted(a.view())
            .iter()
            .zip(&fitted)
            .all(|(p, q)| (p - q).abs() < 1e-6)
    );
}

#[test]
fn wide_gd_network_tracks_kernel_gd() {
    // A GD-trained network stays close to kernel GD with its analytic NTK, more so for
    // wider networks (the coupling of the paper).
    let n = 40;
    let mut z = randn(n, 3, 6);
    z.column_mut(2).fill(1.0);
    let y = z
        .map_axis(Axis(1), |c| (2.0 * c[0]).sin() + 0.5 * c[1])
        .insert_axis(Axis(1));
    let h = Kernel::Ntk1.gram(z.view()).unwrap();
    let sp = Spectral::new(h.view(), y.view()).unwrap();
    let (eta, k) = (1.0, 10u32);
    let kernel_fit = sp.fitted(sp.alpha_gd(eta, k).view());
    let mut gaps = Vec::new();
    for m in [200usize, 20_000] {
        let mut net = TwoLayerRelu::symmetric(m, 3, 1, 7).unwrap();
        for _ in 0..k {
            net.gd_step(z.view(), y.view(), eta);
        }
        let f = net.forward(z.view());
        gaps.push(
            f.iter()
                .zip(&kernel_fit)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max),
        );
    }
    eprintln!("sup gap network vs kernel GD (k = 10) at m = 200, 20 000: {gaps:?}");
    assert!(gaps[1] < gaps[0], "{gaps:?}");
}
