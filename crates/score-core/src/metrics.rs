//! Sample-quality metrics that need no downloaded network (the sample metrics of docs/score-core.md).
//!
//! All take row-major `f64` arrays `[n, d]`. Sample-based metrics are estimates: report
//! them with the sample sizes used.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, ScoreError};

fn rows(x: &[f64], d: usize, what: &'static str) -> Result<usize> {
    if d == 0 || x.is_empty() || !x.len().is_multiple_of(d) {
        return Err(ScoreError::invalid(
            what,
            format!("{} values do not form rows of dimension {d}", x.len()),
        ));
    }
    Ok(x.len() / d)
}

/// Sliced Wasserstein-2 distance: the root mean over `n_proj` random unit directions of
/// the squared 1-D W2 distance between the projected samples (sorted-quantile
/// transport; unequal sample sizes are matched at common quantiles).
pub fn sliced_w2(a: &[f64], b: &[f64], d: usize, n_proj: usize, seed: u64) -> Result<f64> {
    let (na, nb) = (rows(a, d, "a")?, rows(b, d, "b")?);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let m = na.max(nb);
    let mut total = 0.0;
    for _ in 0..n_proj {
        let mut u: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        u.iter_mut().for_each(|v| *v /= norm);
        let proj = |x: &[f64]| {
            let mut p: Vec<f64> = x
                .chunks_exact(d)
                .map(|r| r.iter().zip(&u).map(|(a, b)| a * b).sum())
                .collect();
            p.sort_by(f64::total_cmp);
            p
        };
        let (pa, pb) = (proj(a), proj(b));
        let mut s = 0.0;
        for i in 0..m {
            let q = (i as f64 + 0.5) / m as f64;
            let (va, vb) = (
                pa[((q * na as f64) as usize).min(na - 1)],
                pb[((q * nb as f64) as usize).min(nb - 1)],
            );
            s += (va - vb).powi(2);
        }
        total += s / m as f64;
    }
    Ok((total / n_proj as f64).sqrt())
}

fn sq_dist(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum()
}

/// Squared maximum mean discrepancy with a Gaussian RBF kernel, k(x, y) =
/// exp(−‖x − y‖²/(2h²)), bandwidth h² from the median heuristic (half the median squared
/// distance of the pooled sample). Unbiased U-statistic; returns (MMD², h²).
pub fn rbf_mmd2(a: &[f64], b: &[f64], d: usize) -> Result<(f64, f64)> {
    let (na, nb) = (rows(a, d, "a")?, rows(b, d, "b")?);
    if na < 2 || nb < 2 {
        return Err(ScoreError::invalid(
            "samples",
            "MMD needs at least two rows per sample",
        ));
    }
    let pooled: Vec<&[f64]> = a.chunks_exact(d).chain(b.chunks_exact(d)).collect();
    let mut dists = Vec::new();
    let step = (pooled.len() / 500).max(1);
    for i in (0..pooled.len()).step_by(step) {
        for j in (i + 1..pooled.len()).step_by(step) {
            dists.push(sq_dist(pooled[i], pooled[j]));
        }
    }
    dists.sort_by(f64::total_cmp);
    let h2 = (dists[dists.len() / 2] / 2.0).max(1e-12);
    let k = |x: &[f64], y: &[f64]| (-sq_dist(x, y) / (2.0 * h2)).exp();
    let mean_within = |x: &[f64], n: usize| {
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    s += k(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
                }
            }
        }
        s / (n * (n - 1)) as f64
    };
    let mut cross = 0.0;
    for xa in a.chunks_exact(d) {
        for xb in b.chunks_exact(d) {
            cross += k(xa, xb);
        }
    }
    cross /= (na * nb) as f64;
    Ok((mean_within(a, na) + mean_within(b, nb) - 2.0 * cross, h2))
}

/// The memorisation rate of Yoon et al. (2023): the fraction of generated samples whose
/// nearest training sample is closer than `ratio` (1/3 in the paper) times the distance
/// to the second-nearest training sample.
pub fn memorization_rate(generated: &[f64], train: &[f64], d: usize, ratio: f64) -> Result<f64> {
    let (ng, nt) = (rows(generated, d, "generated")?, rows(train, d, "train")?);
    if nt < 2 {
        return Err(ScoreError::invalid(
            "train",
            "need at least two training samples",
        ));
    }
    let mut hits = 0usize;
    for g in generated.chunks_exact(d) {
        let (mut d1, mut d2) = (f64::INFINITY, f64::INFINITY);
        for t in train.chunks_exact(d) {
            let s = sq_dist(g, t);
            if s < d1 {
                d2 = d1;
                d1 = s;
            } else if s < d2 {
                d2 = s;
            }
        }
        if d1.sqrt() < ratio * d2.sqrt() {
            hits += 1;
        }
    }
    Ok(hits as f64 / ng as f64)
}

/// Distance from each query row to its nearest row of `reference`.
pub fn nearest_neighbour_distances(
    queries: &[f64],
    reference: &[f64],
    d: usize,
) -> Result<Vec<f64>> {
    rows(queries, d, "queries")?;
    rows(reference, d, "reference")?;
    Ok(queries
        .chunks_exact(d)
        .map(|q| {
            reference
                .chunks_exact(d)
                .map(|r| sq_dist(q, r))
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect())
}

/// Least-squares slope of ln y against ln x: the empirical order of a power law
/// (convergence orders, decay rates).
pub fn loglog_slope(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    let m = logs.len() as f64;
    let (mx, my) = (
        logs.iter().map(|p| p.0).sum::<f64>() / m,
        logs.iter().map(|p| p.1).sum::<f64>() / m,
    );
    logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
        / logs.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>()
}

/// Mean of `values` with a 95 % percentile bootstrap interval (`resamples` resamples
/// with replacement, seeded): (mean, low, high). NaN for an empty slice.
pub fn mean_interval(values: &[f64], resamples: usize, seed: u64) -> (f64, f64, f64) {
    use rand::RngExt;
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>() / n as f64;
    let point = mean(&mut values.iter().copied());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draws: Vec<f64> = (0..resamples.max(1))
        .map(|_| mean(&mut (0..n).map(|_| values[rng.random_range(0..n)])))
        .collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    (point, at(0.025), at(0.975))
}

/// Per-coordinate mean and (biased) variance of row-major samples.
pub fn moments(x: &[f64], d: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows(x, d, "samples")?;
    let mut mean = vec![0.0; d];
    for r in x.chunks_exact(d) {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n as f64);
    }
    let mut var = vec![0.0; d];
    for r in x.chunks_exact(d) {
        var.iter_mut()
            .zip(r.iter().zip(&mean))
            .for_each(|(s, (v, m))| *s += (v - m).powi(2) / n as f64);
    }
    Ok((mean, var))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::GaussianMixture;

    #[test]
    fn mean_interval_brackets_the_mean_and_is_degenerate_for_constants() {
        assert_eq!(mean_interval(&[2.0; 5], 500, 1), (2.0, 2.0, 2.0));
        let v: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let (m, lo, hi) = mean_interval(&v, 2000, 1);
        assert_eq!(m, 19.5);
        // Standard error of the mean of 0..39: sd 11.69 / √40 = 1.85; the 95 % interval
        // half-width is about 1.96 SE = 3.6. Allow the bootstrap's own ±20 % scatter.
        assert!(lo < m && m < hi, "{lo} {m} {hi}");
        assert!(((hi - lo) / 2.0 - 3.63).abs() < 0.75, "{lo} {hi}");
        assert!(mean_interval(&[], 10, 0).0.is_nan());
    }

    #[test]
    fn sliced_w2_of_shifted_gaussians() {
        // For N(0, I) and N(δe₁, I) the W2 along direction u is |δ·u₁|, so the sliced
        // W2² is δ²·E[u₁²] = δ²/d; at d = 2, δ = 2: sqrt(2) ≈ 1.414.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let g = GaussianMixture::gaussian(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
        let h = GaussianMixture::gaussian(vec![2.0, 0.0], vec![1.0, 1.0]).unwrap();
        let (a, b) = (g.sample(4000, &mut rng), h.sample(4000, &mut rng));
        let sw = sliced_w2(&a, &b, 2, 200, 7).unwrap();
        // Projection Monte Carlo over 200 directions: relative SE of E[u₁²] ≈ 0.05.
        assert!((sw - 2f64.sqrt()).abs() < 0.15, "{sw}");
        let same = sliced_w2(&a, &g.sample(4000, &mut rng), 2, 50, 7).unwrap();
        assert!(same < 0.1, "{same}");
    }

    #[test]
    fn mmd_separates_and_memorisation_counts_copies() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let g = GaussianMixture::gaussian(vec![0.0; 3], vec![1.0; 3]).unwrap();
        let (a, b) = (g.sample(300, &mut rng), g.sample(300, &mut rng));
        let c: Vec<f64> = g
            .sample(300, &mut rng)
            .into_iter()
            .map(|v| v + 1.0)
            .collect();
        let (same, _) = rbf_mmd2(&a, &b, 3).unwrap();
        let (diff, _) = rbf_mmd2(&a, &c, 3).unwrap();
        assert!(
            diff > 10.0 * same.abs().max(1e-3),
            "same {same}, diff {diff}"
        );
        // Exact copies of training points are memorised; fresh draws are not.
        assert_eq!(memorization_rate(&a[..30], &a, 3, 1.0 / 3.0).unwrap(), 1.0);
        assert!(memorization_rate(&b, &a, 3, 1.0 / 3.0).unwrap() < 0.1);
    }
}

/// Mean and covariance (divided by n) of row-major data, as faer objects.
fn mean_cov(x: &[f64], d: usize) -> Result<(Vec<f64>, faer::Mat<f64>)> {
    let n = rows(x, d, "samples")?;
    let (mean, _) = moments(x, d)?;
    let xc = faer::Mat::from_fn(n, d, |i, j| x[i * d + j] - mean[j]);
    Ok((mean, (xc.transpose() * &xc) * faer::Scale(1.0 / n as f64)))
}

/// A PCA basis: the mean and the top-`k` principal directions (d × k, row-major) of
/// `reference`, for features on which to compute a Fréchet distance.
pub fn pca_basis(reference: &[f64], d: usize, k: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mean, cov) = mean_cov(reference, d)?;
    let evd = cov
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| ScoreError::invalid("pca", format!("eigendecomposition failed: {e:?}")))?;
    let u = evd.U();
    let k = k.min(d);
    let basis = (0..d * k).map(|i| u[(i / k, d - 1 - i % k)]).collect();
    Ok((mean, basis))
}

/// Project rows onto a PCA basis from [`pca_basis`].
pub fn pca_project(x: &[f64], d: usize, mean: &[f64], basis: &[f64]) -> Vec<f64> {
    let k = basis.len() / d;
    x.chunks_exact(d)
        .flat_map(|r| {
            (0..k)
                .map(|c| {
                    (0..d)
                        .map(|j| (r[j] - mean[j]) * basis[j * k + c])
                        .sum::<f64>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fréchet distance between Gaussians fitted to two samples of features `[n, k]`:
/// ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^{½} Σ₂ Σ₁^{½})^{½}). On Inception features this is FID;
/// on other features, label it by the features (e.g. "FD on PCA-32 pixels").
pub fn frechet_distance(a: &[f64], b: &[f64], k: usize) -> Result<f64> {
    let (ma, ca) = mean_cov(a, k)?;
    let (mb, cb) = mean_cov(b, k)?;
    frechet_from_moments(&ma, &ca, &mb, &cb)
}

/// The Fréchet distance between N(μ_a, Σ_a) and N(μ_b, Σ_b):
/// ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b) − 2 tr(Σ_a^{½} Σ_b Σ_a^{½})^{½}. The last trace equals
/// tr(Σ_aΣ_b)^{½} (the two matrices are similar); it is computed from symmetric
/// eigendecompositions, with round-off negative eigenvalues clipped to 0, which is
/// stable where `scipy.linalg.sqrtm` of the non-symmetric product is not.
pub fn frechet_from_moments(
    ma: &[f64],
    ca: &faer::Mat<f64>,
    mb: &[f64],
    cb: &faer::Mat<f64>,
) -> Result<f64> {
    let k = ma.len();
    let eig = |m: &faer::Mat<f64>| {
        m.self_adjoint_eigen(faer::Side::Lower).map_err(|e| {
            ScoreError::invalid("frechet", format!("eigendecomposition failed: {e:?}"))
        })
    };
    let ea = eig(ca)?;
    let (ua, sa) = (ea.U(), ea.S().column_vector());
    let scaled = faer::Mat::from_fn(k, k, |i, t| ua[(i, t)] * sa[t].max(0.0).sqrt());
    let sqrt_a = &scaled * ua.transpose();
    let m = &sqrt_a * cb * &sqrt_a;
    let m = faer::Mat::from_fn(k, k, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let tr_sqrt: f64 = m
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|e| ScoreError::invalid("frechet", format!("{e:?}")))?
        .iter()
        .map(|v| v.max(0.0).sqrt())
        .sum();
    let mean_term: f64 = ma.iter().zip(mb).map(|(x, y)| (x - y).powi(2)).sum();
    let tr = (0..k).map(|i| ca[(i, i)] + cb[(i, i)]).sum::<f64>();
    Ok(mean_term + tr - 2.0 * tr_sqrt)
}

#[cfg(test)]
mod frechet_tests {
    use super::*;
    use crate::mixture::GaussianMixture;

    #[test]
    fn frechet_distance_of_known_gaussians() {
        // N(0, I) vs N(δ, 4I) in k = 3: δ² + 3·(1 + 4 − 2·2) = δ² + 3; δ = (1, 0, 0) → 4.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = GaussianMixture::gaussian(vec![0.0; 3], vec![1.0; 3])
            .unwrap()
            .sample(20_000, &mut rng);
        let b = GaussianMixture::gaussian(vec![1.0, 0.0, 0.0], vec![4.0; 3])
            .unwrap()
            .sample(20_000, &mut rng);
        let fd = frechet_distance(&a, &b, 3).unwrap();
        // Sampling error of the covariance terms at n = 20 000: a few percent of 4.
        assert!((fd - 4.0).abs() < 0.15, "{fd}");
        assert!(frechet_distance(&a, &a, 3).unwrap().abs() < 1e-8);
    }

    #[test]
    fn pca_finds_known_axes_and_projects_onto_them() {
        // Six points around μ = (1, 2, 3), ±3 along x, ±1 along y, ±0.1 along z: the
        // covariance is diag(3, 1/3, 1/300), so the top two axes are ±e_x and ±e_y.
        let mu = [1.0, 2.0, 3.0];
        let offsets = [
            [3.0, 0.0, 0.0],
            [-3.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, -1.0, 0.0],
            [0.0, 0.0, 0.1],
            [0.0, 0.0, -0.1],
        ];
        let data: Vec<f64> = offsets
            .iter()
            .flat_map(|o| (0..3).map(move |j| mu[j] + o[j]))
            .collect();
        let (mean, basis) = pca_basis(&data, 3, 2).unwrap();
        for j in 0..3 {
            assert!((mean[j] - mu[j]).abs() < 1e-12);
        }
        // basis is [d, k] row-major: column 0 = ±e_x, column 1 = ±e_y.
        assert!((basis[0].abs() - 1.0).abs() < 1e-12 && (basis[3].abs() - 1.0).abs() < 1e-12);
        assert!(basis[1].abs() < 1e-12 && basis[2].abs() < 1e-12 && basis[5].abs() < 1e-12);
        // The point μ + (3, −1, 0.1) projects to (±3, ∓1): its offsets on the axes.
        let p = pca_project(&[4.0, 1.0, 3.1], 3, &mean, &basis);
        assert!((p[0] - 3.0 * basis[0]).abs() < 1e-12, "{p:?}");
        assert!((p[1] + basis[3]).abs() < 1e-12, "{p:?}");
    }
}
