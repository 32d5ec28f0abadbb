//! The diffusion set-up, the stopping rules and the estimator.

use ntk_theory::dsm::{Target, Triples, ou};
use ntk_theory::estimator::{KernelEstimator, Stop};
use ntk_theory::kernels::Kernel;
use ntk_theory::stopping::{holdout_stop, rwy_stop};

#[test]
fn posterior_mean_is_tweedie_of_the_marginal() {
    // f* = E[X₀ | X_t = x] must satisfy Tweedie: α f* − x = h ∇ log p_t(x). Check the
    // score against a finite difference of the closed-form marginal log-density.
    for target in [
        Target::Gaussian {
            dim: 1,
            mean: 1.0,
            var: 0.25,
        },
        Target::TwoMixture {
            dim: 1,
            c: 2.0,
            var: 0.25,
        },
    ] {
        for &t in &[0.05, 0.5, 2.0] {
            let (a, h) = ou(t);
            let logp = |x: f64| match target {
                Target::Gaussian { mean, var, .. } => {
                    -(x - a * mean).powi(2) / (2.0 * (a * a * var + h))
                }
                Target::TwoMixture { c, var, .. } => {
                    let s2 = a * a * var + h;
                    ((-(x - a * c).powi(2) / (2.0 * s2)).exp()
                        + (-(x + a * c).powi(2) / (2.0 * s2)).exp())
                    .ln()
                }
            };
            for &x in &[-1.3, 0.2, 2.4] {
                let fd = (logp(x + 1e-5) - logp(x - 1e-5)) / 2e-5;
                let s = target.score(ndarray::ArrayView1::from(&[x]), t)[0];
                assert!(
                    (fd - s).abs() < 1e-6 * s.abs().max(1.0),
                    "{target:?} t {t} x {x}: {fd} vs {s}"
                );
            }
        }
    }
}

#[test]
fn triples_have_the_right_noise_level() {
    // For N(1, 0.25) the label noise Var[X₀ | X_t] = v·h/(α²v + h) averaged over t.
    let tr = Triples::draw(
        &Target::Gaussian {
            dim: 1,
            mean: 1.0,
            var: 0.25,
        },
        20_000,
        0.01,
        2.0,
        3,
    );
    let expect: f64 = (0..2000)
        .map(|i| {
            let t = 0.01 + (2.0 - 0.01) * (i as f64 + 0.5) / 2000.0;
            let (a, h) = ou(t);
            0.25 * h / (a * a * 0.25 + h)
        })
        .sum::<f64>()
        / 2000.0;
    let got = tr.label_noise_var();
    // 20 000 draws: relative SE ≈ sqrt(2/20 000) ≈ 1%; allow 5 SE.
    assert!((got / expect - 1.0).abs() < 0.05, "{got} vs {expect}");
    assert_eq!(tr.p(), 3);
}

#[test]
fn stopping_rules() {
    // RWY stops earlier when the noise is larger.
    let eig: ndarray::Array1<f64> = (0..200).map(|i| 200.0 * 0.9f64.powi(i)).collect();
    let k_small_noise = rwy_stop(eig.view(), 1.0, 1.0, 0.05, 100_000).unwrap();
    let k_big_noise = rwy_stop(eig.view(), 1.0, 1.0, 0.5, 100_000).unwrap();
    assert!(
        k_big_noise < k_small_noise,
        "{k_big_noise} vs {k_small_noise}"
    );
    assert!(rwy_stop(eig.view(), 1.0, 1.0, 0.0, 10).is_err());
    // A case computed by hand (RWY 2014, eq. 6: the stop is the step *before* the first
    // violation). N = 4 eigenvalues of H equal to 2, so λ̂ = 1/2 for H/N; η = 1. For
    // k ≥ 2, R̂(1/√k) = √(1/k) and the bound 1/(2eσ̂k) is crossed when √k > 1/(2eσ̂):
    // with σ̂ = 0.05, at k = 14 (√13 = 3.606 < 3.679 < √14 = 3.742), so T̂ = 13.
    let twos = ndarray::Array1::from_elem(4, 2.0);
    assert_eq!(rwy_stop(twos.view(), 1.0, 1.0, 0.05, 1000).unwrap(), 13);
    // With σ̂ = 1 already k = 1 violates it (√½ > 1/(2e)): T̂ = 0, no step.
    assert_eq!(rwy_stop(twos.view(), 1.0, 1.0, 1.0, 1000).unwrap(), 0);
    assert_eq!(
        holdout_stop(&[1, 5, 9], |k| (k as f64 - 5.2).abs()),
        (5, (5.0f64 - 5.2).abs())
    );
}

#[test]
fn early_stopped_estimator_beats_interpolation() {
    let target = Target::Gaussian {
        dim: 1,
        mean: 1.0,
        var: 0.25,
    };
    let tr = Triples::draw(&target, 300, 0.01, 2.0, 1);
    let te = Triples::draw(&target, 500, 0.01, 2.0, 2);
    let stopped = KernelEstimator::fit(
        &tr,
        Kernel::Ntk1,
        1.0,
        Stop::Holdout { fraction: 0.2 },
        20_000,
        (0.01, 2.0),
    )
    .unwrap();
    let interp =
        KernelEstimator::fit(&tr, Kernel::Ntk1, 1.0, Stop::Ridge(1e-8), 0, (0.01, 2.0)).unwrap();
    let (a, b) = (stopped.mse(&te).unwrap(), interp.mse(&te).unwrap());
    eprintln!(
        "hold-out stopped (k = {}): {a:.4}; interpolating: {b:.4}",
        stopped.steps
    );
    assert!(a < b, "{a} vs {b}");
    // The EDM-form denoiser maps σ to t = ½ ln(1 + σ²).
    let (smin, smax) = stopped.sigma_range();
    assert!(
        (smin - (0.02f64).exp_m1().sqrt()).abs() < 1e-12
            && (smax - (4.0f64).exp_m1().sqrt()).abs() < 1e-12
    );
}

#[test]
fn estimator_save_load_and_denoiser() {
    use burn::tensor::{DType, Device};
    use score_core::Denoiser;
    use score_core::tensor::{from_f64_as, sigma_tensor, to_vec_f64};
    let target = Target::TwoMixture {
        dim: 2,
        c: 2.0,
        var: 0.25,
    };
    let tr = Triples::draw(&target, 200, 0.01, 3.0, 4);
    let est =
        KernelEstimator::fit(&tr, Kernel::Ntk1, 1.0, Stop::Steps(50), 0, (0.01, 3.0)).unwrap();
    let dir = std::env::temp_dir().join(format!("ntk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("m.safetensors");
    est.save(&p).unwrap();
    let back = KernelEstimator::load(&p).unwrap();
    assert_eq!(
        (back.z.clone(), back.alpha.clone(), back.steps, back.d()),
        (est.z.clone(), est.alpha.clone(), 50, 2)
    );
    // As a Denoiser (EDM form) it matches the host evaluation.
    let x = [0.5, -1.0, 2.0, 2.2];
    let got = to_vec_f64(back.denoise(
        from_f64_as(&x, [2, 2], DType::F64, &Device::flex()),
        sigma_tensor(0.7, 2, &Device::flex()),
        None,
    ))
    .unwrap();
    let want = est
        .denoise_edm(ndarray::ArrayView2::from_shape((2, 2), &x).unwrap(), 0.7)
        .unwrap();
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{got:?} vs {want:?}"
    );
    std::fs::write(&p, b"junk").unwrap();
    assert!(
        KernelEstimator::load(&p)
            .unwrap_err()
            .to_string()
            .contains("m.safetensors")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
