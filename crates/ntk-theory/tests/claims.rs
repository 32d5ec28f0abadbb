//! The spec's claims 3–5 and the sampling-aware stop, as small fast tests (the full
//! studies are `cargo xtask experiment ntk`).

use ntk_theory::dsm::{Target, Triples};
use ntk_theory::estimator::{KernelEstimator, Stop};
use ntk_theory::kernels::Kernel;

const GAUSS_1D: Target = Target::Gaussian {
    dim: 1,
    mean: 1.0,
    var: 0.25,
};

fn mean_std(x: &ndarray::Array2<f64>) -> (f64, f64) {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64;
    (m, v.sqrt())
}

#[test]
fn both_mixture_modes_are_found_by_sampling() {
    // Spec item 5: the fitted estimator is a Denoiser; Heun samples from it find both
    // modes of ½N(±(2, 2), 0.25 I). With 400 samples the share of one mode has a
    // binomial SD of 0.025 (and the 400 training triples add another 0.025), so a
    // correct fit lands in [0.35, 0.65] with more than 4 SD to spare.
    let target = Target::TwoMixture {
        dim: 2,
        c: 2.0,
        var: 0.25,
    };
    let tr = Triples::draw(&target, 400, 0.01, 3.0, 3);
    let est = KernelEstimator::fit(
        &tr,
        Kernel::Ntk1,
        1.0,
        Stop::Holdout { fraction: 0.2 },
        100_000,
        (0.01, 3.0),
    )
    .unwrap();
    let xs = est.sample(400, 16, 1).unwrap();
    let plus = xs.rows().into_iter().filter(|r| r[0] + r[1] > 0.0).count() as f64 / 400.0;
    assert!((0.35..=0.65).contains(&plus), "share of the + mode {plus}");
    // And the samples sit at the modes, not between them: the mean distance to the nearer
    // centre is below √2, half the 2√2 between a centre and the origin (true samples:
    // 0.5·√(π/2) = 0.63; samples at the midpoint between the modes: 2.83).
    let dist = xs
        .rows()
        .into_iter()
        .map(|r| {
            let c = if r[0] + r[1] > 0.0 { 2.0 } else { -2.0 };
            ((r[0] - c).powi(2) + (r[1] - c).powi(2)).sqrt()
        })
        .sum::<f64>()
        / 400.0;
    assert!(
        dist < 2f64.sqrt(),
        "mean distance to the nearer centre {dist}"
    );
}

#[test]
fn the_sampling_stop_undoes_the_variance_collapse() {
    // Item 4 of issue 16: the hold-out stop (best t-averaged score error) collapses the
    // samples of N(1, 0.25) (std ≈ 0.1 against 0.5); the sampling-aware stop, which
    // picks k by the distance of its samples to held-out data, must bring the std within
    // 20 % of 0.5. 2 000 samples put the std's own sampling error at 0.5/√4000 = 0.008,
    // so both bounds are about the estimator, not the draw.
    let tr = Triples::draw(&GAUSS_1D, 800, 0.01, 3.0, 500);
    let fit = |stop| KernelEstimator::fit(&tr, Kernel::Ntk1, 1.0, stop, 10_000_000, (0.01, 3.0));
    let hold = fit(Stop::Holdout { fraction: 0.2 }).unwrap();
    let samp = fit(Stop::Sampling { fraction: 0.2 }).unwrap();
    let (_, std_hold) = mean_std(&hold.sample(2000, 32, 0).unwrap());
    let (m, std_samp) = mean_std(&samp.sample(2000, 32, 0).unwrap());
    assert!(std_hold < 0.3, "hold-out std {std_hold}");
    assert!((std_samp - 0.5).abs() < 0.1, "sampling std {std_samp}");
    assert!((m - 1.0).abs() < 0.2, "sampling mean {m}");
    assert!(samp.steps > hold.steps, "{} vs {}", samp.steps, hold.steps);
}

#[test]
fn oracle_error_falls_with_n_and_rwy_stays_within_the_spec_factor() {
    // Spec items 3 and 4 at small n, on N(1·1, 0.25 I) in d = 2 (t ~ U[0.01, 2]), seed 0
    // of `cargo xtask experiment ntk`'s rates study. There, over n = 100 … 800, the five
    // seeds' slopes of the oracle MSE were −0.52 … −0.66 and RWY / oracle at n = 800 was
    // 6.55 … 6.98.
    // - Slope below −0.3: a plateau (the interpolating estimator's slope is −0.08) fails
    //   it; −0.3 leaves 0.2 below the shallowest seed.
    // - RWY within a factor 10 of the oracle (the spec's claim), at n = 800.
    // - The interpolating estimator at least 5× worse than the oracle at n = 800 (the
    //   spec: it plateaus; measured 10×).
    let target = Target::Gaussian {
        dim: 2,
        mean: 1.0,
        var: 0.25,
    };
    let rows = ntk_theory::study::rates_study(
        &[("gaussian-2d".into(), target)],
        &[100, 200, 400, 800],
        100_000,
        (0.01, 2.0),
        &[0],
    )
    .unwrap();
    let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.n as f64, r.mse_oracle)).collect();
    let slope = score_core::metrics::loglog_slope(&pts);
    assert!(slope < -0.3, "oracle slope {slope}: {pts:?}");
    let last = rows.last().unwrap();
    let ratio = last.mse_rwy / last.mse_oracle;
    assert!(ratio < 10.0, "RWY / oracle {ratio}");
    assert!(
        last.k_rwy < last.k_oracle,
        "RWY is conservative: {} vs {}",
        last.k_rwy,
        last.k_oracle
    );
    assert!(
        last.mse_interp > 5.0 * last.mse_oracle,
        "{} vs {}",
        last.mse_interp,
        last.mse_oracle
    );
}

#[test]
fn the_four_terms_bound_the_error() {
    // The decomposition's terms are the legs of a triangle between five predictors at
    // the test inputs, so the network's error is at most their sum and the kernel
    // estimator's at most the three kernel terms (to rounding). Label mismatch grows
    // from k = 10 to k = 1 000 and early stopping falls (measured: 0.016 → 0.100 and
    // 0.270 → 0.037 at n = 200 in `cargo xtask experiment ntk --quick`).
    let rows = ntk_theory::decomposition::network_terms(
        &GAUSS_1D,
        200,
        &[300],
        &[10, 1000],
        (0.01, 2.0),
        0,
    )
    .unwrap();
    let kernel =
        ntk_theory::decomposition::kernel_terms(&GAUSS_1D, 200, &[10, 1000], (0.01, 2.0), 0)
            .unwrap();
    for r in &rows {
        assert!(r.total <= r.bound + 1e-12, "{r:?}");
        assert!(r.coupling > 0.0);
    }
    for t in &kernel {
        assert!(
            t.total <= t.label_mismatch + t.early_stopping + t.approximation + 1e-12,
            "{t:?}"
        );
    }
    assert!(kernel[1].label_mismatch > kernel[0].label_mismatch);
    assert!(kernel[1].early_stopping < kernel[0].early_stopping);
    assert!(
        ntk_theory::decomposition::network_terms(&GAUSS_1D, 50, &[10], &[10, 5], (0.01, 2.0), 0)
            .is_err(),
        "step counts must increase"
    );
}
