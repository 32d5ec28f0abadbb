//! DPM-Solver-v3 against exact references on Gaussian data: zero statistics reduce it
//! to DPM-Solver++ (exact Taylor integrals); the closed-form statistics of a diagonal
//! Gaussian make its first-order step exact; estimated statistics match the closed form.

use burn::tensor::{DType, Device};
use score_core::mixture::GaussianMixture;
use score_core::samplers::dpm_solver_v3::{ModelStatistics, V3Options, dpm_solver_v3_sample};
use score_core::samplers::{SampleContext, Sampler, SdeOptions};
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{from_f64_as, stream_rng, to_vec_f64};

fn gaussian4() -> GaussianMixture {
    GaussianMixture::gaussian(vec![0.5, -0.3, 0.0, 1.0], vec![0.25, 1.0, 0.04, 2.25]).unwrap()
}

/// The probability-flow end point at σ = 0.002 of states `x_t` at σ = 80 under the
/// diagonal Gaussian N(mean, diag var), rows of 4.
fn flow_to_sigma_min(x_t: &[f64], mean: &[f64], var: &[f64]) -> Vec<f64> {
    x_t.iter()
        .enumerate()
        .map(|(i, &x)| {
            let (m, v) = (mean[i % 4], var[i % 4]);
            m + ((0.002f64.powi(2) + v) / (80.0f64.powi(2) + v)).sqrt() * (x - m)
        })
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

#[test]
fn zero_statistics_reduce_to_dpm_solver_plus_plus() {
    let device = Device::flex();
    let g = gaussian4();
    let sigmas = karras_sigmas(12, 0.002, 80.0, 7.0).unwrap();
    let zero = ModelStatistics::zero(4, 0.002, 80.0);
    for (start, order) in [(0usize, 3usize), (3, 3), (0, 1)] {
        let x_t = g.sample_noisy(8, sigmas[start], &mut stream_rng(4, 0, 0));
        let x = || from_f64_as(&x_t, [8, 4], DType::F64, &device);
        let ctx = || SampleContext::new().start_at(start);
        let v3 = dpm_solver_v3_sample(
            &g,
            &zero,
            &sigmas,
            x(),
            &V3Options::predictor(order),
            &mut ctx(),
        )
        .unwrap();
        // DPM-Solver++ with exact Taylor weights: order 3 is the 3M solver with the
        // exact coefficient 2φ₃ (which starts with orders 1 and 2 the same way), order 1
        // is Euler (= DDIM).
        let reference = match order {
            1 => Sampler::Euler,
            _ => Sampler::DpmppThreeMSde(SdeOptions {
                eta: 0.0,
                exact_phi3: true,
                ..Default::default()
            }),
        };
        let r = reference.sample(&g, &sigmas, x(), &mut ctx()).unwrap();
        assert_eq!(v3.nfe, r.nfe);
        let (a, b) = (to_vec_f64(v3.x).unwrap(), to_vec_f64(r.x).unwrap());
        // Simpson's rule on 128 intervals of an exponential integrand: relative error
        // about (h/128)⁴/180 ≈ 9e-12 per weight for the largest step h ≈ 1.4, on states
        // of size up to 80·3 at the first step and propagated through 11 steps.
        assert!(
            max_diff(&a, &b) < 1e-8,
            "start {start}, order {order}: {}",
            max_diff(&a, &b)
        );
    }
}

#[test]
fn closed_form_statistics_make_a_diagonal_gaussian_exact_at_first_order() {
    let device = Device::flex();
    let g = gaussian4();
    let (mean, var) = (&g.means[0], &g.variances[0]);
    let ms = ModelStatistics::diagonal_gaussian(mean, var, 0.002, 80.0, 4097);
    // Six levels from 80 to σ_min, no final step to 0: Euler is far off, v3-1 exact.
    let sigmas = karras_sigmas(6, 0.002, 80.0, 7.0).unwrap();
    let grid = &sigmas[..6];
    let x_t = g.sample_noisy(16, 80.0, &mut stream_rng(5, 0, 0));
    let exact = flow_to_sigma_min(&x_t, mean, var);
    let x = || from_f64_as(&x_t, [16, 4], DType::F64, &device);
    let v3 = dpm_solver_v3_sample(
        &g,
        &ms,
        grid,
        x(),
        &V3Options::predictor(1),
        &mut SampleContext::new(),
    )
    .unwrap();
    let euler = Sampler::Euler
        .sample(&g, grid, x(), &mut SampleContext::new())
        .unwrap();
    let (ev3, eeu) = (
        max_diff(&to_vec_f64(v3.x).unwrap(), &exact),
        max_diff(&to_vec_f64(euler.x).unwrap(), &exact),
    );
    eprintln!(
        "max error at σ_min, 5 steps: v3 order 1 with closed-form EMS {ev3:.2e}, Euler {eeu:.2e}"
    );
    // What remains is the linear interpolation of the tabulated statistics (4097 points,
    // Δλ = 2.6e-3; error Δλ²/8·max|a''| ≈ 1e-6 relative) and the quadrature.
    assert!(ev3 < 1e-4, "{ev3}");
    assert!(eeu > 1e-2, "{eeu}");
}

#[test]
fn estimated_statistics_match_the_closed_form() {
    let device = Device::flex();
    let g = gaussian4();
    let (mean, var) = (&g.means[0], &g.variances[0]);
    let x0 = g.sample(256, &mut stream_rng(6, 0, 0));
    let x0 = from_f64_as(&x0, [256, 4], DType::F64, &device);
    let k = 64;
    let est = ModelStatistics::estimate(&g, x0, 0.002, 80.0, k, 1).unwrap();
    let exact = ModelStatistics::diagonal_gaussian(mean, var, 0.002, 80.0, k);
    let max_mu = mean.iter().fold(0.0f64, |a, m| a.max(m.abs()));
    for i in 0..k {
        for j in 0..4 {
            // l: the exact denoiser is linear with a diagonal Jacobian, so Hutchinson's
            // v⊙Jv = a·v² = a exactly; only the finite difference's rounding remains.
            assert!((est.l[i][j] - exact.l[i][j]).abs() < 1e-6, "l[{i}][{j}]");
            // b: the forward difference along the ODE (δ = 1e-3) errs by δ/2·|f''| ≤
            // 5e-4|μ|, and l' from central differences on this grid (Δλ = 0.17) by
            // Δλ²/6·|a'''| ≤ 0.005·4; so 0.03·max|μ| in all.
            assert!(
                (est.b[i][j] - exact.b[i][j]).abs() < 0.03 * max_mu,
                "b[{i}][{j}] = {} vs {}",
                est.b[i][j],
                exact.b[i][j]
            );
        }
    }
}

/// The statistics estimated from float32 outputs (a network's precision): l still
/// matches the closed form and s stays 0. With the float64 probe step (10⁻³σ) the
/// rounding of D (2⁻²⁴ relative) became an error of about u/ε in l at small σ, and s,
/// a ratio of two rounding errors, came out far from 0.
#[test]
fn statistics_estimated_in_float32_stay_near_the_closed_form() {
    let device = Device::flex();
    let g = gaussian4();
    let (mean, var) = (&g.means[0], &g.variances[0]);
    let x0 = g.sample(256, &mut stream_rng(6, 0, 0));
    let x0 = from_f64_as(&x0, [256, 4], DType::F32, &device);
    let k = 32;
    let est = ModelStatistics::estimate(&g, x0, 0.002, 80.0, k, 1).unwrap();
    let exact = ModelStatistics::diagonal_gaussian(mean, var, 0.002, 80.0, k);
    let (mut l_err, mut s_max) = (0.0f64, 0.0f64);
    for i in 0..k {
        for j in 0..4 {
            l_err = l_err.max((est.l[i][j] - exact.l[i][j]).abs());
            s_max = s_max.max(est.s[i][j].abs());
        }
    }
    eprintln!("float32 statistics: max |l − l_exact| {l_err:.2e}, max |s| {s_max:.2e}");
    // l: per probe the rounding error is 2⁻²⁴·|D|/ε with ε = (16·2⁻²⁴σ²)^{1/3}, at most
    // 4e-4 (σ = 0.002, |D| ≤ 1.5), averaged over 256 probes; 1e-3 bounds it unaveraged.
    assert!(l_err < 1e-3, "{l_err}");
    // s: the closed form is 0 (g is constant for a diagonal Gaussian); the guard
    // leaves it 0 where f's spread is rounding, and elsewhere the fit of a constant
    // is 0 up to its noise. 1 is far below the ±50 the float64 step gave.
    assert!(s_max < 1.0, "{s_max}");
}

/// The reference's refinements keep the closed-form case exact: with the diagonal
/// Gaussian's statistics g is constant, so the corrector (which redoes each step from
/// the previous state with the new point among the interpolation points), the
/// pseudo-order and the lower final orders must all land on the exact solution; a
/// corrector that restarted from the wrong state or stepped to the wrong λ would not.
/// (g's derivatives vanish here, so this does not check the Taylor terms' points.)
#[test]
fn corrector_and_pseudo_order_stay_exact_on_the_diagonal_gaussian() {
    let device = Device::flex();
    let g = gaussian4();
    let (mean, var) = (&g.means[0], &g.variances[0]);
    let ms = ModelStatistics::diagonal_gaussian(mean, var, 0.002, 80.0, 4097);
    let sigmas = karras_sigmas(6, 0.002, 80.0, 7.0).unwrap();
    let grid = &sigmas[..6];
    let x_t = g.sample_noisy(16, 80.0, &mut stream_rng(5, 0, 0));
    let exact = flow_to_sigma_min(&x_t, mean, var);
    let x = || from_f64_as(&x_t, [16, 4], DType::F64, &device);
    let plain = V3Options::predictor(3);
    let with = |pseudo, corrector| V3Options {
        pseudo: Some(pseudo),
        corrector: Some(corrector),
        ..V3Options::default()
    };
    for opts in [
        plain,
        V3Options::default(),
        with(false, true),
        with(true, false),
    ] {
        let v3 =
            dpm_solver_v3_sample(&g, &ms, grid, x(), &opts, &mut SampleContext::new()).unwrap();
        assert_eq!(v3.nfe, 5);
        let err = max_diff(&to_vec_f64(v3.x).unwrap(), &exact);
        // As in the first-order test: interpolation of the tables and quadrature.
        assert!(err < 1e-4, "{opts:?}: {err}");
    }
}
