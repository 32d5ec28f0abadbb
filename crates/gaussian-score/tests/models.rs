//! Fitting, saving and the large-scale paths (randomized eigensolver, streamed delta).

use gaussian_score::{DeltaScore, GaussianScore};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn randn(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// `n` rows of `d` standard normal values.
fn randn_rows(n: usize, d: usize, seed: u64) -> Array2<f64> {
    Array2::from_shape_vec((n, d), randn(n * d, seed)).unwrap()
}

#[test]
fn randomized_top_r_matches_the_exact_eigensolver() {
    // Data with a decaying spectrum: coordinate j scaled by 0.8^j.
    let d = 60;
    let mut data = randn_rows(2000, d, 1);
    for (j, mut col) in data.columns_mut().into_iter().enumerate() {
        col *= 0.8f64.powi(j as i32);
    }
    let exact = GaussianScore::fit(data.view(), Some(8)).unwrap();
    let fast = GaussianScore::fit_randomized(data.view(), 8, 10, 3, 0).unwrap();
    for k in 0..8 {
        let rel = (fast.eigvals[k] / exact.eigvals[k] - 1.0).abs();
        assert!(
            rel < 1e-6,
            "eigenvalue {k}: {} vs {}",
            fast.eigvals[k],
            exact.eigvals[k]
        );
    }
    // Same denoiser (eigenvector signs do not matter).
    let x = randn_rows(3, d, 2);
    let (a, b) = (
        exact.denoise_f64(x.view(), 0.3),
        fast.denoise_f64(x.view(), 0.3),
    );
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-6));
}

#[test]
fn save_and_load_round_trip_and_bad_files_are_errors() {
    let data = randn_rows(500, 7, 3);
    let g = GaussianScore::fit(data.view(), Some(4)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.safetensors");
    g.save(&p).unwrap();
    assert_eq!(GaussianScore::load(&p).unwrap(), g);
    std::fs::write(&p, b"junk").unwrap();
    let msg = GaussianScore::load(&p).unwrap_err().to_string();
    assert!(msg.contains("g.safetensors"), "{msg}");
}

#[test]
fn delta_score_streams_and_stays_finite_at_tiny_sigma() {
    // The spec's scale: a 10 000 × 784 training set, queries near training points. At
    // σ = 0.002 the softmax picks the nearest training point (no overflow: logits reach
    // −‖x − x_i‖²/(2σ²) ≈ −1e8); at σ = 1 it equals a direct evaluation.
    let (n, d) = (10_000, 784);
    let data = randn_rows(n, d, 4);
    let mut delta = DeltaScore::new(data.clone()).unwrap();
    delta.block = 1024;
    let q = data.select(Axis(0), &[5, 6]) + randn_rows(2, d, 5) * 0.01;
    let out = delta.denoise_f64(q.view(), 0.002);
    assert!(out.iter().all(|v| v.is_finite()));
    assert!(
        out.row(0)
            .iter()
            .zip(data.row(5))
            .all(|(a, b)| (a - b).abs() < 1e-9)
    );
    // Direct evaluation at σ = 1 (log-sum-exp over all points at once).
    let s = 1.0;
    let logits: Vec<f64> = (0..n)
        .map(|i| {
            -data
                .row(i)
                .iter()
                .zip(q.row(0))
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                / (2.0 * s * s)
        })
        .collect();
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
    let direct: Vec<f64> = (0..d)
        .map(|j| {
            (0..n)
                .map(|i| (logits[i] - m).exp() / z * data[[i, j]])
                .sum()
        })
        .collect();
    let streamed = delta.denoise_f64(q.row(0).insert_axis(Axis(0)), s);
    assert!(
        direct
            .iter()
            .zip(&streamed)
            .all(|(a, b)| (a - b).abs() < 1e-10)
    );
}

#[test]
fn auto_skip_on_an_exactly_gaussian_model_skips_to_the_end() {
    // If the "network" is the Gaussian itself, its score EV is 1 at every level and the
    // rule skips as far as it may (N − 2); with a different Gaussian it stops earlier.
    use burn::tensor::{DType, Device};
    use score_core::sigmas::karras_sigmas;
    use score_core::tensor::from_f64_as;
    let d = 8;
    let g = GaussianScore::fit(randn_rows(400, d, 6).view(), None).unwrap();
    let sigmas = karras_sigmas(12, 0.002, 80.0, 7.0).unwrap();
    let x = from_f64_as(
        &randn(4 * d, 7).iter().map(|v| 80.0 * v).collect::<Vec<_>>(),
        [4, d],
        DType::F64,
        &Device::flex(),
    );
    let a = gaussian_score::auto_skip(&g, &g, &sigmas, x.clone(), 0.9975, None).unwrap();
    let (k, evs) = (a.k, a.evs);
    assert_eq!(k, sigmas.len() - 2);
    assert!(evs.iter().all(|e| (e - 1.0).abs() < 1e-12));
    // Every level is read: 12 denoiser calls, and 11 Heun steps of 2 evaluations
    // between them (the walk ends at the last level, with no step to σ = 0).
    assert_eq!(a.nfe, 12 + 2 * 11);
    // A model with 4× the variance along every direction disagrees at low σ.
    let other = GaussianScore::new(g.mean.clone(), &g.eigvals * 4.0, g.eigvecs.clone()).unwrap();
    let a2 = gaussian_score::auto_skip(&other, &g, &sigmas, x, 0.9975, None).unwrap();
    let (k2, evs2) = (a2.k, a2.evs);
    assert!(k2 < k && k2 > 0, "k2 = {k2}, evs {evs2:?}");
    // The level the network starts from, σ_k, passed the threshold itself (the rule
    // once returned the first failing level).
    assert!(
        evs2[..=k2].iter().all(|&e| e >= 0.9975),
        "k2 = {k2}, evs {evs2:?}"
    );
}

#[test]
fn skip_options_parse_and_resolve() {
    use burn::tensor::{DType, Device};
    use gaussian_score::Skip;
    use score_core::sigmas::karras_sigmas;
    use score_core::tensor::from_f64_as;
    assert_eq!(Skip::from_options("3", None, 0.9).unwrap(), Skip::Index(3));
    assert_eq!(
        Skip::from_options("15%", None, 0.9).unwrap(),
        Skip::Fraction(0.15)
    );
    assert!(Skip::from_options("100%", None, 0.9).is_err());
    assert!(Skip::from_options("x%", None, 0.9).is_err());
    assert_eq!(
        Skip::from_options("auto", None, 0.9).unwrap(),
        Skip::Auto { threshold: 0.9 }
    );
    assert_eq!(
        Skip::from_options("auto", Some(10.0), 0.9).unwrap(),
        Skip::Sigma(10.0)
    );
    let msg = Skip::from_options("three", None, 0.9)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("skip") && msg.contains("three"), "{msg}");
    assert!(Skip::from_options("1", Some(-1.0), 0.9).is_err());
    let d = 4;
    let g = GaussianScore::fit(randn_rows(200, d, 3).view(), None).unwrap();
    let sigmas = karras_sigmas(18, 0.002, 80.0, 7.0).unwrap();
    let probes = from_f64_as(&randn(2 * d, 4), [2, d], DType::F64, &Device::flex());
    // σ_4 = 19.35 is the first level at or below 20.
    let (k, nfe) = Skip::Sigma(20.0)
        .resolve(&g, &g, &sigmas, probes.clone(), None)
        .unwrap();
    assert_eq!((k, nfe), (4, 0));
    let (k, nfe) = Skip::Auto { threshold: 0.9975 }
        .resolve(&g, &g, &sigmas, probes, None)
        .unwrap();
    assert_eq!(k, sigmas.len() - 2);
    assert!(nfe > 0);
}
