//! The correctness checks of `shared/papers/gaussian-score.md` (numbered as there),
//! in float64.

use burn::tensor::{DType, Device};
use gaussian_score::teleport::{teleport_sample, teleport_sample_vp};
use gaussian_score::{DeltaScore, GaussianScore, MixtureScore};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use score_core::metrics::loglog_slope;
use score_core::samplers::{HeunOptions, SampleContext, Sampler, heun_sample};
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{from_f64_as, to_vec_f64};

/// Row-major values as rows of width `d` (a view, no copy).
fn v2(x: &[f64], d: usize) -> ArrayView2<'_, f64> {
    ArrayView2::from_shape((x.len() / d, d), x).unwrap()
}

/// An array's values in row-major order.
fn flat(a: Array2<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

fn randn(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// A rank-8 Gaussian in d = 20 with random orthonormal directions.
fn rank8() -> GaussianScore {
    let (d, r) = (20, 8);
    // Orthonormalise random vectors by fitting a Gaussian to data built from them.
    let z = randn(4000 * d, 1);
    let full = GaussianScore::fit(v2(&z, d), None).unwrap();
    let eigvals = Array1::from_shape_fn(r, |k| 4.0 * 0.6f64.powi(k as i32));
    let eigvecs = Array2::from_shape_fn((d, r), |(j, k)| full.eigvecs[[j, k]]);
    let mean = Array1::from_shape_fn(d, |j| (j as f64 * 0.3).sin());
    GaussianScore::new(mean, eigvals, eigvecs).unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn check1_closed_form_matches_tight_numerical_integration() {
    // RK4 in t = ln σ (dx/dt = x − D(x; σ)) with 20 000 steps from 80 to 0.002: local
    // error O(h⁵), h = ln(40 000)/20 000 ≈ 5.3e-4, far below the 1e-8 asked.
    let g = rank8();
    let d = g.dim();
    let x_t: Vec<f64> = randn(4 * d, 2).iter().map(|v| 80.0 * v).collect();
    let closed = flat(g.pf_solution(v2(&x_t, g.dim()), 80.0, 0.002));
    let f = |x: &[f64], t: f64| -> Vec<f64> {
        let dn = flat(g.denoise_f64(v2(x, g.dim()), t.exp()));
        x.iter().zip(dn).map(|(a, b)| a - b).collect()
    };
    let steps = 20_000;
    let (t0, t1) = (80f64.ln(), 0.002f64.ln());
    let h = (t1 - t0) / steps as f64;
    let mut x = x_t.clone();
    for i in 0..steps {
        let t = t0 + i as f64 * h;
        let add = |x: &[f64], k: &[f64], c: f64| {
            x.iter().zip(k).map(|(a, b)| a + c * b).collect::<Vec<_>>()
        };
        let k1 = f(&x, t);
        let k2 = f(&add(&x, &k1, h / 2.0), t + h / 2.0);
        let k3 = f(&add(&x, &k2, h / 2.0), t + h / 2.0);
        let k4 = f(&add(&x, &k3, h), t + h);
        for j in 0..x.len() {
            x[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
    }
    let diff = max_abs_diff(&closed, &x);
    eprintln!("check 1: max |closed form − RK4| = {diff:.2e}");
    assert!(diff <= 1e-8, "{diff}");
    // The denoiser along the trajectory equals D at the trajectory's points.
    for &s in &[40.0, 1.0, 0.01] {
        let along = flat(g.denoiser_along(v2(&x_t, g.dim()), 80.0, s));
        let direct = flat(g.denoise_f64(
            v2(&flat(g.pf_solution(v2(&x_t, g.dim()), 80.0, s)), g.dim()),
            s,
        ));
        assert!(max_abs_diff(&along, &direct) < 1e-10);
    }
}

fn heun_error(g: &GaussianScore, x_t: &[f64], n: usize, steps: usize, k: usize) -> f64 {
    let device = Device::flex();
    let d = g.dim();
    let grid = karras_sigmas(steps, 0.002, 80.0, 7.0).unwrap();
    let grid = &grid[..steps]; // end at σ_min
    let x = from_f64_as(x_t, [n, d], DType::F64, &device);
    let out = teleport_sample(
        g,
        g,
        &Sampler::Heun(HeunOptions::default()),
        grid,
        x,
        k,
        &mut SampleContext::new(),
    )
    .unwrap();
    let xs = to_vec_f64(out.x).unwrap();
    let exact = flat(g.pf_solution(v2(x_t, g.dim()), 80.0, 0.002));
    xs.chunks(d)
        .zip(exact.chunks(d))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum::<f64>()
        / n as f64
}

#[test]
fn check2_heun_error_falls_as_n_to_the_minus_two() {
    let g = rank8();
    let n = 8;
    let x_t: Vec<f64> = randn(n * g.dim(), 3).iter().map(|v| 80.0 * v).collect();
    let pts: Vec<(f64, f64)> = [18usize, 36, 72, 144, 288]
        .iter()
        .map(|&s| ((s as f64).ln(), heun_error(&g, &x_t, n, s, 0).ln()))
        .collect();
    let slope = loglog_slope(
        &pts.iter()
            .map(|p| (p.0.exp(), p.1.exp()))
            .collect::<Vec<_>>(),
    );
    let errs: Vec<f64> = pts.iter().map(|p| p.1.exp()).collect();
    eprintln!("check 2: Heun errors {errs:?}, slope {slope:.3}");
    assert!((slope + 2.0).abs() <= 0.1, "{slope}");
}

#[test]
fn check3_teleport_error_is_non_increasing_in_k() {
    let g = rank8();
    let n = 8;
    let x_t: Vec<f64> = randn(n * g.dim(), 4).iter().map(|v| 80.0 * v).collect();
    let errs: Vec<f64> = (0..12).map(|k| heun_error(&g, &x_t, n, 18, k)).collect();
    eprintln!("check 3: teleport + Heun error for k = 0..11: {errs:?}");
    for w in errs.windows(2) {
        // Non-increasing up to float64 round-off of the remaining steps.
        assert!(w[1] <= w[0] * (1.0 + 1e-9) + 1e-12, "{errs:?}");
    }
}

#[test]
fn check4_gaussian_denoiser_mse_is_optimal() {
    let g = rank8();
    let d = g.dim();
    let n = 40_000;
    // x₀ ~ N(μ, Σ): μ + U diag(sqrt λ) z.
    let z = randn(n * g.rank(), 5);
    let r = g.rank();
    let x0: Vec<f64> = (0..n)
        .flat_map(|i| {
            let zi = &z[i * r..(i + 1) * r];
            (0..d)
                .map(|j| {
                    g.mean[j]
                        + (0..r)
                            .map(|k| g.eigvecs[[j, k]] * g.eigvals[k].sqrt() * zi[k])
                            .sum::<f64>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for &s in &[0.1, 1.0, 10.0] {
        let noise = randn(n * d, 6);
        let x: Vec<f64> = x0.iter().zip(&noise).map(|(a, e)| a + s * e).collect();
        let mse = |den: &[f64]| {
            den.iter()
                .zip(&x0)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                / n as f64
        };
        let got = mse(&flat(g.denoise_f64(v2(&x, g.dim()), s)));
        let want = g.expected_mse(s);
        eprintln!("check 4: sigma {s}: Monte Carlo MSE {got:.5}, closed form {want:.5}");
        // 40 000 samples: relative SE of a sum of r weighted chi-squares ≤ sqrt(2/n) ≈ 0.7%.
        assert!(
            (got / want - 1.0).abs() < 0.01,
            "sigma {s}: {got} vs {want}"
        );
        // Any other linear shrinkage (factors scaled by 0.9 or 1.1) does worse.
        for scale in [0.9, 1.1] {
            let shr: Vec<f64> = g.eigvals.iter().map(|l| scale * l / (l + s * s)).collect();
            let alt = GaussianScore::new(
                g.mean.clone(),
                shr.iter()
                    .map(|f| f / (1.0 - f).max(1e-12) * s * s)
                    .collect::<Array1<f64>>(),
                g.eigvecs.clone(),
            )
            .unwrap();
            assert!(
                mse(&flat(alt.denoise_f64(v2(&x, alt.dim()), s))) > got,
                "sigma {s}, scale {scale}"
            );
        }
    }
}

#[test]
fn check5_mixture_score_is_the_gradient_of_log_density() {
    let mut data = randn(600 * 6, 7);
    for (i, v) in data.iter_mut().enumerate() {
        *v += if (i / 6) % 3 == 0 {
            3.0
        } else if (i / 6) % 3 == 1 {
            -2.0
        } else {
            0.0
        };
    }
    for rank in [None, Some(3)] {
        let m = MixtureScore::fit(v2(&data, 6), 3, rank, 0).unwrap();
        let x = [0.4, -1.0, 2.0, 0.1, -0.3, 1.2];
        for &s in &[0.3, 1.0, 5.0] {
            let sc = flat(m.score_f64(v2(&x, m.dim()), s));
            for j in 0..6 {
                let h = 1e-5;
                let (mut a, mut b) = (x, x);
                a[j] += h;
                b[j] -= h;
                let fd = (m.log_prob(ArrayView1::from(&a), s)
                    - m.log_prob(ArrayView1::from(&b), s))
                    / (2.0 * h);
                assert!(
                    (fd - sc[j]).abs() <= 1e-6 * sc[j].abs().max(1.0),
                    "rank {rank:?} sigma {s} coord {j}: fd {fd} vs {}",
                    sc[j]
                );
            }
        }
    }
}

#[test]
fn check6_delta_score_approaches_the_gaussian_as_sigma_grows() {
    let d = 5;
    let data: Vec<f64> = randn(300 * d, 8)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + (i % d) as f64 * 0.5))
        .collect();
    let delta = DeltaScore::new(v2(&data, d).to_owned()).unwrap();
    let g = GaussianScore::fit(v2(&data, d), None).unwrap();
    let sigmas = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let mut pts = Vec::new();
    for (i, &s) in sigmas.iter().enumerate() {
        let x: Vec<f64> = data
            .iter()
            .zip(randn(data.len(), 100 + i as u64))
            .map(|(a, e)| a + s * e)
            .collect();
        let (sd, sg) = (
            delta.score_like(&x, s),
            flat(g.score_f64(v2(&x, g.dim()), s)),
        );
        let err: f64 = sd.iter().zip(&sg).map(|(a, b)| (a - b).powi(2)).sum();
        let norm: f64 = sd.iter().map(|a| a * a).sum();
        pts.push((s.ln(), (err / norm).ln()));
    }
    let slope = loglog_slope(
        &pts.iter()
            .map(|p| (p.0.exp(), p.1.exp()))
            .collect::<Vec<_>>(),
    );
    let one_minus_ev: Vec<f64> = pts.iter().map(|p| p.1.exp()).collect();
    eprintln!("check 6: 1 − EV for sigma 2..64: {one_minus_ev:?}; slope {slope:.2}");
    // The spec reports about −5.6 against the leading-order σ⁻⁶; allow ±1.
    assert!((-6.6..=-4.6).contains(&slope), "{slope}");
}

trait ScoreLike {
    fn score_like(&self, x: &[f64], s: f64) -> Vec<f64>;
}
impl ScoreLike for DeltaScore {
    fn score_like(&self, x: &[f64], s: f64) -> Vec<f64> {
        flat(self.denoise_f64(v2(x, self.dim()), s))
            .iter()
            .zip(x)
            .map(|(d, xi)| (d - xi) / (s * s))
            .collect()
    }
}

#[test]
fn check7_push_forward_of_variances() {
    let g = rank8();
    let d = g.dim();
    let n = 20_000;
    let sigma_t = 80.0;
    // x_T ~ p_σT = N(μ, Σ + σ_T² I); along u_k the variance is σ_T² + λ_k.
    let z = randn(n * d, 9);
    let r = g.rank();
    let zz = randn(n * r, 10);
    let x_t: Vec<f64> = (0..n)
        .flat_map(|i| {
            (0..d)
                .map(|j| {
                    g.mean[j]
                        + sigma_t * z[i * d + j]
                        + (0..r)
                            .map(|k| g.eigvecs[[j, k]] * g.eigvals[k].sqrt() * zz[i * r + k])
                            .sum::<f64>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for &s in &[10.0, 1.0, 0.05] {
        let y = flat(g.pf_solution(v2(&x_t, g.dim()), sigma_t, s));
        for k in 0..r {
            let proj: Vec<f64> = y
                .chunks(d)
                .map(|row| {
                    (0..d)
                        .map(|j| g.eigvecs[[j, k]] * (row[j] - g.mean[j]))
                        .sum()
                })
                .collect();
            let var = proj.iter().map(|p| p * p).sum::<f64>() / n as f64;
            let want = s * s + g.eigvals[k];
            // Exact map of an exact Gaussian: only sampling error, SE of a variance
            // estimate is sqrt(2/n) ≈ 1%; 5 SE allowed.
            assert!(
                (var / want - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
                "sigma {s}, k {k}: {var} vs {want}"
            );
        }
    }
    // And exactly, per sample: ψ_k(σ)² (σ_T² + λ_k) = σ² + λ_k.
    let k = 2;
    let psi = ((1.0 + g.eigvals[k]) / (sigma_t * sigma_t + g.eigvals[k])).sqrt();
    assert!((psi * psi * (sigma_t * sigma_t + g.eigvals[k]) - (1.0 + g.eigvals[k])).abs() < 1e-12);
}

#[test]
fn heun_via_score_core_on_the_gaussian_denoiser_tensor_path() {
    // The tensor implementation of the denoiser equals the float64 host formula.
    let g = rank8();
    let device = Device::flex();
    let x = randn(6 * g.dim(), 11);
    let t = from_f64_as(&x, [6, g.dim()], DType::F64, &device);
    let sig = from_f64_as(&[0.5, 0.5, 0.5, 2.0, 2.0, 2.0], [6], DType::F64, &device);
    let got = to_vec_f64(g.denoise_tensor(t, sig)).unwrap();
    let mut want = flat(g.denoise_f64(v2(&x[..3 * g.dim()], g.dim()), 0.5));
    want.extend(flat(g.denoise_f64(v2(&x[3 * g.dim()..], g.dim()), 2.0)));
    assert!(max_abs_diff(&got, &want) < 1e-12);
    let grid = karras_sigmas(10, 0.002, 80.0, 7.0).unwrap();
    let x0 = from_f64_as(&x, [6, g.dim()], DType::F64, &device).mul_scalar(80.0);
    let out = heun_sample(
        &g,
        &grid,
        x0,
        &HeunOptions::default(),
        &mut SampleContext::new(),
    )
    .unwrap();
    assert_eq!(out.nfe, 19);
}

#[test]
fn vp_form_is_the_edm_form_under_the_change_of_variables() {
    // VP state x_t = α_t·x_edm with σ_edm = σ_t/α_t (EDM Table 1, VP column). On EDM's VP schedule
    // α = 1/sqrt(1 + σ_edm²), so the VP solution from (α_T, σ_T) to (α_t, σ_t) must equal
    // α_t · pf_solution(x_T/α_T, σ_T/α_T → σ_t/α_t).
    let g = rank8();
    let d = g.dim();
    let (s_big, s_small) = (30.0f64, 0.7f64); // EDM σ's
    let (a_big, a_small) = (
        1.0 / (1.0 + s_big * s_big).sqrt(),
        1.0 / (1.0 + s_small * s_small).sqrt(),
    );
    let x_vp: Vec<f64> = randn(3 * d, 12)
        .iter()
        .map(|v| v * (s_big * a_big))
        .collect();
    let vp = flat(g.pf_solution_vp(
        v2(&x_vp, g.dim()),
        a_big,
        s_big * a_big,
        a_small,
        s_small * a_small,
    ));
    let x_edm: Vec<f64> = x_vp.iter().map(|v| v / a_big).collect();
    let edm: Vec<f64> = g
        .pf_solution(v2(&x_edm, g.dim()), s_big, s_small)
        .iter()
        .map(|v| v * a_small)
        .collect();
    assert!(
        max_abs_diff(&vp, &edm) < 1e-12,
        "{}",
        max_abs_diff(&vp, &edm)
    );
}

/// Issue 16 item 4: a VP sampler path. Teleporting in VP coordinates (the VP closed form,
/// then DDIM on VP states) must give the EDM path's samples (the EDM closed form, then
/// Euler), since DDIM on x_vp = α·x_edm is Euler on x_edm step for step. Both run in
/// float64 with the same network (here a second Gaussian, so that the denoiser is not the
/// teleport's own); the only differences are rounding, a few ulps per step over 12 steps
/// on values of size ~80, so 1e-10 absolute has four orders of margin.
#[test]
fn vp_teleport_path_matches_the_edm_path() {
    let g = rank8();
    let d = g.dim();
    let net = GaussianScore::fit(v2(&randn(500 * d, 41), d), None).unwrap();
    let device = Device::flex();
    // Karras levels and a final σ = 0.
    let grid0 = karras_sigmas(12, 0.002, 80.0, 7.0).unwrap();
    assert_eq!(grid0.last(), Some(&0.0));
    let x_edm: Vec<f64> = randn(5 * d, 3).iter().map(|v| v * 80.0).collect();
    let a0 = score_core::samplers::vp_coefficients(80.0).0;
    for k in [0usize, 3, 7] {
        let edm = teleport_sample(
            &net,
            &g,
            &Sampler::Euler,
            &grid0,
            from_f64_as(&x_edm, [5, d], DType::F64, &device),
            k,
            &mut SampleContext::new(),
        )
        .unwrap();
        let x_vp: Vec<f64> = x_edm.iter().map(|v| v * a0).collect();
        let vp = teleport_sample_vp(
            &net,
            &g,
            &grid0,
            from_f64_as(&x_vp, [5, d], DType::F64, &device),
            k,
            &mut SampleContext::new(),
        )
        .unwrap();
        assert_eq!(edm.nfe, vp.nfe);
        let (e, v) = (to_vec_f64(edm.x).unwrap(), to_vec_f64(vp.x).unwrap());
        assert!(
            max_abs_diff(&e, &v) < 1e-10,
            "k = {k}: {}",
            max_abs_diff(&e, &v)
        );
    }
}

/// The batched mixture evaluation (256 rows per block, one projection per component per
/// block): on 300 points, rows on both sides of the block boundary have the score of
/// the finite-difference gradient of log p_σ, to the tolerance of check 5.
#[test]
fn batched_mixture_score_matches_the_gradient_of_log_density_across_blocks() {
    let mut data = randn(600 * 6, 7);
    for (i, v) in data.iter_mut().enumerate() {
        *v += [3.0, -2.0, 0.0][(i / 6) % 3];
    }
    let m = MixtureScore::fit(v2(&data, 6), 3, Some(3), 0).unwrap();
    let x: Vec<f64> = randn(300 * 6, 11).iter().map(|v| 2.0 * v).collect();
    let s = 0.7;
    let sc = flat(m.score_f64(v2(&x, m.dim()), s));
    for i in [0usize, 17, 255, 256, 299] {
        let p: Vec<f64> = x[i * 6..(i + 1) * 6].to_vec();
        for j in 0..6 {
            let h = 1e-5;
            let (mut a, mut b) = (p.clone(), p.clone());
            a[j] += h;
            b[j] -= h;
            let fd = (m.log_prob(ArrayView1::from(&a), s) - m.log_prob(ArrayView1::from(&b), s))
                / (2.0 * h);
            let got = sc[i * 6 + j];
            assert!(
                (fd - got).abs() <= 1e-6 * got.abs().max(1.0),
                "row {i} coord {j}: fd {fd} vs {got}"
            );
        }
    }
}
