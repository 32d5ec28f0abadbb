//! Feature statistics and the metrics computed from Inception features: FID, KID and
//! improved precision/recall. All arithmetic is in f64; features arrive as f32 rows.

use std::path::Path;

use faer::Mat;
use rand::SeedableRng;
use rand::seq::index::sample;

use super::archive::{Archive, write_stored};
use score_core::error::{Result, ScoreError};
use score_io::npy::{npy_f64_bytes, parse_npy};

/// Mean and covariance of a set of features, as pytorch-fid stores them: `sigma` is
/// the unbiased covariance (`np.cov(rowvar=False)`, divisor n − 1).
#[derive(Debug, Clone)]
pub struct FeatureStats {
    /// Number of feature vectors.
    pub n: usize,
    /// Mean, length d.
    pub mu: Vec<f64>,
    /// Covariance, d × d.
    pub sigma: Mat<f64>,
}

/// Streams rows into shifted sums, so that statistics of any number of images take
/// O(d²) memory and no catastrophic cancellation (the shift is the first row).
#[derive(Debug, Clone)]
pub struct StatsAccumulator {
    d: usize,
    n: usize,
    shift: Vec<f64>,
    sum: Vec<f64>,
    outer: Mat<f64>,
}

impl StatsAccumulator {
    /// An empty accumulator for d-dimensional features.
    pub fn new(d: usize) -> Self {
        Self {
            d,
            n: 0,
            shift: Vec::new(),
            sum: vec![0.0; d],
            outer: Mat::zeros(d, d),
        }
    }

    /// Add rows `[m, d]`.
    pub fn add(&mut self, rows: &[f32]) -> Result<()> {
        let d = self.d;
        if !rows.len().is_multiple_of(d) {
            return Err(ScoreError::Shape {
                what: "features".into(),
                expected: format!("rows of {d}"),
                got: format!("{} values", rows.len()),
            });
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(ScoreError::invalid(
                "features",
                format!("value at {i} is not finite"),
            ));
        }
        let m = rows.len() / d;
        if m == 0 {
            return Ok(());
        }
        if self.shift.is_empty() {
            self.shift = rows[..d].iter().map(|&v| v as f64).collect();
        }
        let xc = Mat::from_fn(m, d, |i, j| rows[i * d + j] as f64 - self.shift[j]);
        for i in 0..m {
            for j in 0..d {
                self.sum[j] += xc[(i, j)];
            }
        }
        self.outer += xc.transpose() * &xc;
        self.n += m;
        Ok(())
    }

    /// The statistics; at least two rows are needed for a covariance.
    pub fn finish(&self) -> Result<FeatureStats> {
        let n = self.n;
        if n < 2 {
            return Err(ScoreError::invalid(
                "features",
                format!("{n} feature vectors: at least 2 are needed for a covariance"),
            ));
        }
        let nf = n as f64;
        let mean_c: Vec<f64> = self.sum.iter().map(|s| s / nf).collect();
        let d = self.d;
        let sigma = Mat::from_fn(d, d, |i, j| {
            (self.outer[(i, j)] - nf * mean_c[i] * mean_c[j]) / (nf - 1.0)
        });
        let mu = mean_c.iter().zip(&self.shift).map(|(m, s)| m + s).collect();
        Ok(FeatureStats { n, mu, sigma })
    }
}

impl FeatureStats {
    /// Statistics of rows `[n, d]`.
    pub fn from_features(rows: &[f32], d: usize) -> Result<Self> {
        let mut acc = StatsAccumulator::new(d);
        acc.add(rows)?;
        acc.finish()
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    /// Save as `.npz` with pytorch-fid's keys: `mu` `[d]` and `sigma` `[d, d]`, float64.
    /// The sample count is stored as `n` (a 0-d int64 array is not needed by readers).
    pub fn save_npz(&self, path: &Path) -> Result<()> {
        self.save_npz_keyed(path, None)
    }

    /// [`FeatureStats::save_npz`] with a content key (`key.txt` in the archive, which
    /// numpy's `np.load` lists but pytorch-fid never reads): what a cache checks
    /// before trusting the file ([`FeatureStats::npz_key`]).
    pub fn save_npz_keyed(&self, path: &Path, key: Option<&str>) -> Result<()> {
        let d = self.dim();
        let sigma: Vec<f64> = (0..d * d).map(|k| self.sigma[(k / d, k % d)]).collect();
        let mu = npy_f64_bytes(&[d], &self.mu)?;
        let sigma = npy_f64_bytes(&[d, d], &sigma)?;
        let n = npy_f64_bytes(&[1], &[self.n as f64])?;
        let mut entries: Vec<(&str, &[u8])> =
            vec![("mu.npy", &mu), ("sigma.npy", &sigma), ("n.npy", &n)];
        if let Some(k) = key {
            entries.push(("key.txt", k.as_bytes()));
        }
        score_core::fs::write_atomic(path, &write_stored(&entries))
    }

    /// The content key a `.npz` was saved with, `None` when it has none.
    pub fn npz_key(path: &Path) -> Result<Option<String>> {
        let bytes = score_core::fs::read_file(path)?;
        let zip = Archive::new(&bytes, path)?;
        if !zip.entries().iter().any(|e| e.name == "key.txt") {
            return Ok(None);
        }
        let raw = zip.read_named("key.txt")?;
        Ok(Some(String::from_utf8_lossy(&raw).into_owned()))
    }

    /// Read a `.npz` with keys `mu` and `sigma` (pytorch-fid's format, any float dtype).
    /// `n` is 0 when the file does not record it.
    pub fn load_npz(path: &Path) -> Result<Self> {
        let bytes = score_core::fs::read_file(path)?;
        let zip = Archive::new(&bytes, path)?;
        let array = |key: &str| {
            let raw = zip.read_named(&format!("{key}.npy"))?;
            parse_npy(&raw).map_err(|e| ScoreError::format(path, "NPZ", format!("{key}: {e}")))
        };
        let (mu, sigma) = (array("mu")?, array("sigma")?);
        let d = mu.data.len();
        if mu.shape != [d] || sigma.shape != [d, d] {
            return Err(ScoreError::format(
                path,
                "NPZ",
                format!(
                    "mu {:?} and sigma {:?}: expected [d] and [d, d]",
                    mu.shape, sigma.shape
                ),
            ));
        }
        if let Some(bad) = mu.data.iter().chain(&sigma.data).find(|v| !v.is_finite()) {
            return Err(ScoreError::format(
                path,
                "NPZ",
                format!("non-finite value {bad}"),
            ));
        }
        check_covariance(&sigma.data, d).map_err(|e| ScoreError::format(path, "NPZ", e))?;
        let n = array("n").map(|a| a.data.first().copied().unwrap_or(0.0) as usize);
        Ok(Self {
            n: n.unwrap_or(0),
            mu: mu.data,
            sigma: Mat::from_fn(d, d, |i, j| sigma.data[i * d + j]),
        })
    }
}

/// What a covariance must satisfy to be one: a diagonal ≥ 0, symmetry and
/// |σᵢⱼ| ≤ √(σᵢᵢσⱼⱼ) (Cauchy–Schwarz), each up to a relative 1e-3 of √(σᵢᵢσⱼⱼ). The
/// slack covers statistics accumulated in f32: a sum of n rounded terms is off by about
/// √n·2⁻²⁴ relative (1e-4 at n = 10⁶). A matrix that fails (Σ = −I gave FID −1718) is
/// no covariance, and FID from it means nothing.
fn check_covariance(sigma: &[f64], d: usize) -> std::result::Result<(), String> {
    let at = |i: usize, j: usize| sigma[i * d + j];
    if let Some(i) = (0..d).find(|&i| at(i, i) < 0.0) {
        return Err(format!(
            "sigma[{i}, {i}] = {} < 0: not a covariance",
            at(i, i)
        ));
    }
    for i in 0..d {
        for j in 0..i {
            let scale = (at(i, i) * at(j, j)).sqrt();
            let slack = 1e-3 * scale;
            if (at(i, j) - at(j, i)).abs() > slack || at(i, j).abs() > scale + slack {
                return Err(format!(
                    "sigma[{i}, {j}] = {}, sigma[{j}, {i}] = {} with variances {} and {}: not a symmetric covariance",
                    at(i, j),
                    at(j, i),
                    at(i, i),
                    at(j, j)
                ));
            }
        }
    }
    Ok(())
}

/// FID between two sets of statistics: ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{½}).
pub fn fid_from_stats(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(ScoreError::Shape {
            what: "FID statistics".into(),
            expected: format!("dimension {}", a.dim()),
            got: b.dim().to_string(),
        });
    }
    score_core::metrics::frechet_from_moments(&a.mu, &a.sigma, &b.mu, &b.sigma)
}

/// Reference statistics prepared for many FID evaluations against them: the square
/// root of Σ_ref is computed once. For a generated set of n ≤ d rows, Σ_gen has rank
/// ≤ n − 1 and tr(Σ_ref^{½} Σ_gen Σ_ref^{½})^{½} is the sum of square roots of the
/// eigenvalues of the n × n matrix Y Yᵀ/(n − 1), Y = X_c Σ_ref^{½}, which makes one
/// evaluation (and a bootstrap of hundreds) cheap.
#[derive(Debug, Clone)]
pub struct FidReference {
    stats: FeatureStats,
    sqrt_sigma: Mat<f64>,
    trace: f64,
}

/// FID with a bootstrap interval over the generated set.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct FidEstimate {
    /// FID of the whole generated set.
    pub fid: f64,
    /// Standard deviation of FID over bootstrap resamples (with replacement) of the
    /// generated set: the standard error from the generated sample only (the reference
    /// statistics are held fixed).
    pub std_error: f64,
    /// fid ± 1.96·std_error. Not the bootstrap percentiles: a resample repeats rows,
    /// which lowers its effective size and shifts FID (biased upward at finite n) by
    /// about as much as its spread, so percentile intervals miss the estimate itself.
    pub interval: (f64, f64),
    /// Generated rows.
    pub n: usize,
    /// Rows the reference statistics were computed from (0 if the file does not say).
    pub n_ref: usize,
    /// Bootstrap resamples.
    pub resamples: usize,
}

impl FidReference {
    /// Prepare `stats` (one eigendecomposition of Σ_ref).
    pub fn new(stats: FeatureStats) -> Result<Self> {
        let d = stats.dim();
        let e = stats
            .sigma
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|e| ScoreError::invalid("fid reference", format!("{e:?}")))?;
        let (u, s) = (e.U(), e.S().column_vector());
        let scaled = Mat::from_fn(d, d, |i, t| u[(i, t)] * s[t].max(0.0).sqrt());
        let sqrt_sigma = &scaled * u.transpose();
        let trace = (0..d).map(|i| stats.sigma[(i, i)]).sum();
        Ok(Self {
            stats,
            sqrt_sigma,
            trace,
        })
    }

    /// The statistics.
    pub fn stats(&self) -> &FeatureStats {
        &self.stats
    }

    /// FID of the rows `idx` of `rows` `[n, d]` against the reference.
    pub fn fid_of(&self, rows: &[f32], idx: &[usize]) -> Result<f64> {
        let d = self.stats.dim();
        let n = idx.len();
        if n < 2 || !rows.len().is_multiple_of(d) {
            return Err(ScoreError::invalid(
                "fid",
                format!(
                    "{n} generated rows of {} values: need ≥ 2 rows of {d}",
                    rows.len()
                ),
            ));
        }
        let nf = n as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| idx.iter().map(|&i| rows[i * d + j] as f64).sum::<f64>() / nf)
            .collect();
        let xc = Mat::from_fn(n, d, |i, j| rows[idx[i] * d + j] as f64 - mean[j]);
        let trace_gen = (0..d)
            .map(|j| (0..n).map(|i| xc[(i, j)].powi(2)).sum::<f64>())
            .sum::<f64>()
            / (nf - 1.0);
        let y = &xc * &self.sqrt_sigma;
        let small = if n <= d {
            &y * y.transpose()
        } else {
            y.transpose() * &y
        };
        let small = Mat::from_fn(small.nrows(), small.ncols(), |i, j| {
            0.5 * (small[(i, j)] + small[(j, i)]) / (nf - 1.0)
        });
        let tr_sqrt: f64 = small
            .self_adjoint_eigenvalues(faer::Side::Lower)
            .map_err(|e| ScoreError::invalid("fid", format!("{e:?}")))?
            .iter()
            .map(|v| v.max(0.0).sqrt())
            .sum();
        let mean_term: f64 = mean
            .iter()
            .zip(&self.stats.mu)
            .map(|(a, b)| (a - b).powi(2))
            .sum();
        Ok(mean_term + self.trace + trace_gen - 2.0 * tr_sqrt)
    }

    /// FID of all rows with a bootstrap standard error from `resamples` resamples.
    pub fn estimate(&self, rows: &[f32], resamples: usize, seed: u64) -> Result<FidEstimate> {
        use rand::RngExt;
        let n = rows.len() / self.stats.dim();
        let all: Vec<usize> = (0..n).collect();
        let fid = self.fid_of(rows, &all)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let boot = (0..resamples)
            .map(|_| {
                let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
                self.fid_of(rows, &idx)
            })
            .collect::<Result<Vec<f64>>>()?;
        let b = boot.len().max(1) as f64;
        let mean = boot.iter().sum::<f64>() / b;
        let var = boot.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (b - 1.0).max(1.0);
        let std_error = if boot.len() > 1 { var.sqrt() } else { f64::NAN };
        Ok(FidEstimate {
            fid,
            std_error,
            interval: (fid - 1.96 * std_error, fid + 1.96 * std_error),
            n,
            n_ref: self.stats.n,
            resamples,
        })
    }
}

fn rows_mat(rows: &[f32], d: usize, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), d, |i, j| rows[idx[i] * d + j] as f64)
}

/// Kernel Inception Distance as torch-fidelity computes it: the unbiased MMD² with the
/// cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³, averaged over `subsets` random
/// subsets of `subset_size` rows drawn without replacement from each set, capped at
/// the smaller set's size as NVIDIA's StyleGAN2-ADA metric caps it (torch-fidelity
/// refuses a subset larger than a set instead). Returns (mean, standard deviation over
/// subsets).
pub fn kid(
    a: &[f32],
    b: &[f32],
    d: usize,
    subsets: usize,
    subset_size: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    let (na, nb) = (a.len() / d, b.len() / d);
    let m = subset_size.min(na).min(nb);
    if m < 2 || subsets == 0 {
        return Err(ScoreError::invalid(
            "kid",
            format!("sets of {na} and {nb} rows, {subsets} subsets: need ≥ 2 rows and ≥ 1 subset"),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let kernel = |x: &Mat<f64>, y: &Mat<f64>| {
        let g = x * y.transpose();
        Mat::from_fn(g.nrows(), g.ncols(), |i, j| {
            (g[(i, j)] / d as f64 + 1.0).powi(3)
        })
    };
    let mf = m as f64;
    let values: Vec<f64> = (0..subsets)
        .map(|_| {
            let x = rows_mat(a, d, &sample(&mut rng, na, m).into_vec());
            let y = rows_mat(b, d, &sample(&mut rng, nb, m).into_vec());
            let (kxx, kyy, kxy) = (kernel(&x, &x), kernel(&y, &y), kernel(&x, &y));
            let off_diag = |k: &Mat<f64>| {
                let total: f64 = (0..m)
                    .flat_map(|i| (0..m).map(move |j| (i, j)))
                    .map(|p| k[p])
                    .sum();
                total - (0..m).map(|i| k[(i, i)]).sum::<f64>()
            };
            let cross: f64 = (0..m)
                .flat_map(|i| (0..m).map(move |j| (i, j)))
                .map(|p| kxy[p])
                .sum();
            (off_diag(&kxx) + off_diag(&kyy)) / (mf * (mf - 1.0)) - 2.0 * cross / (mf * mf)
        })
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Ok((mean, var.sqrt()))
}

/// Squared distances between every row of `x` and every row of `y`.
fn sq_dists(x: &Mat<f64>, y: &Mat<f64>) -> Mat<f64> {
    let g = x * y.transpose();
    let norm = |m: &Mat<f64>, i: usize| (0..m.ncols()).map(|j| m[(i, j)].powi(2)).sum::<f64>();
    let (nx, ny): (Vec<f64>, Vec<f64>) = (
        (0..x.nrows()).map(|i| norm(x, i)).collect(),
        (0..y.nrows()).map(|i| norm(y, i)).collect(),
    );
    Mat::from_fn(x.nrows(), y.nrows(), |i, j| {
        (nx[i] + ny[j] - 2.0 * g[(i, j)]).max(0.0)
    })
}

/// The squared distance of each row to its k-th nearest other row.
fn knn_radii(d2: &Mat<f64>, k: usize) -> Vec<f64> {
    (0..d2.nrows())
        .map(|i| {
            let mut row: Vec<f64> = (0..d2.ncols())
                .filter(|&j| j != i)
                .map(|j| d2[(i, j)])
                .collect();
            let kth = (k - 1).min(row.len() - 1);
            *row.select_nth_unstable_by(kth, f64::total_cmp).1
        })
        .collect()
}

/// Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is
/// the union of balls around its rows reaching their k-th nearest neighbour; precision
/// is the fraction of generated rows inside the real manifold, recall the fraction of
/// real rows inside the generated one. The paper uses k = 3.
pub fn precision_recall(real: &[f32], fake: &[f32], d: usize, k: usize) -> Result<(f64, f64)> {
    let (nr, nf) = (real.len() / d, fake.len() / d);
    if k == 0 || nr <= k || nf <= k {
        return Err(ScoreError::invalid(
            "precision/recall",
            format!("k = {k} needs more than k rows in each set (got {nr} and {nf})"),
        ));
    }
    let r = rows_mat(real, d, &(0..nr).collect::<Vec<_>>());
    let f = rows_mat(fake, d, &(0..nf).collect::<Vec<_>>());
    let (rr, ff, rf) = (sq_dists(&r, &r), sq_dists(&f, &f), sq_dists(&r, &f));
    let (rad_r, rad_f) = (knn_radii(&rr, k), knn_radii(&ff, k));
    let precision = (0..nf)
        .filter(|&j| (0..nr).any(|i| rf[(i, j)] <= rad_r[i]))
        .count() as f64
        / nf as f64;
    let recall = (0..nr)
        .filter(|&i| (0..nf).any(|j| rf[(i, j)] <= rad_f[j]))
        .count() as f64
        / nr as f64;
    Ok((precision, recall))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian_rows(n: usize, d: usize, shift: f32, seed: u64) -> Vec<f32> {
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z as f32 + shift
            })
            .collect()
    }

    #[test]
    fn streamed_statistics_equal_the_two_pass_ones_and_round_trip_through_npz() {
        // Rows far from the origin: the shifted sums must not lose the covariance.
        let d = 3;
        let rows: Vec<f32> = gaussian_rows(200, d, 1000.0, 1);
        let mut acc = StatsAccumulator::new(d);
        for chunk in rows.chunks(7 * d) {
            acc.add(chunk).unwrap();
        }
        let s = acc.finish().unwrap();
        let n = 200.0;
        for i in 0..d {
            let mi: f64 = (0..200).map(|r| rows[r * d + i] as f64).sum::<f64>() / n;
            assert!((s.mu[i] - mi).abs() < 1e-9);
            for j in 0..d {
                let mj: f64 = (0..200).map(|r| rows[r * d + j] as f64).sum::<f64>() / n;
                let c: f64 = (0..200)
                    .map(|r| (rows[r * d + i] as f64 - mi) * (rows[r * d + j] as f64 - mj))
                    .sum::<f64>()
                    / (n - 1.0);
                assert!((s.sigma[(i, j)] - c).abs() < 1e-9, "{i} {j}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npz");
        s.save_npz(&p).unwrap();
        let t = FeatureStats::load_npz(&p).unwrap();
        assert_eq!((t.n, &t.mu), (200, &s.mu));
        assert_eq!(t.sigma, s.sigma);
        assert!(FeatureStats::from_features(&rows[..d], d).is_err());
        // Issue 26: Σ = −I (FID −1718 before) and an asymmetric Σ are refused by name.
        for (sigma, needle) in [
            (
                Mat::from_fn(d, d, |i, j| if i == j { -1.0 } else { 0.0 }),
                "< 0",
            ),
            (
                Mat::from_fn(d, d, |i, j| {
                    (i == j) as u8 as f64 + (i > j) as u8 as f64 * 0.5
                }),
                "symmetric",
            ),
        ] {
            let bad = FeatureStats {
                n: 2,
                mu: vec![0.0; d],
                sigma,
            };
            bad.save_npz(&p).unwrap();
            let e = FeatureStats::load_npz(&p).unwrap_err().to_string();
            assert!(e.contains("s.npz") && e.contains(needle), "{e}");
        }
    }

    #[test]
    fn the_low_rank_fid_equals_the_full_one() {
        // n < d (low-rank path) and n > d (full path) against the two-covariance formula.
        let d = 6;
        let real = gaussian_rows(300, d, 0.0, 8);
        let reference = FidReference::new(FeatureStats::from_features(&real, d).unwrap()).unwrap();
        for n in [4, 40] {
            let fake: Vec<f32> = gaussian_rows(n, d, 0.3, 9)
                .iter()
                .map(|v| v * 1.5)
                .collect();
            let full = fid_from_stats(
                reference.stats(),
                &FeatureStats::from_features(&fake, d).unwrap(),
            )
            .unwrap();
            let fast = reference
                .fid_of(&fake, &(0..n).collect::<Vec<_>>())
                .unwrap();
            // The full path's Σ_gen is singular for n < d: its round-off eigenvalues (size
            // ε·‖Σ‖) are clipped at 0 but still add up to d·√(ε‖Σ‖) to the trace term.
            let tol = d as f64 * (f64::EPSILON * full).sqrt();
            assert!((full - fast).abs() < tol, "n {n}: {full} vs {fast}");
            let e = reference.estimate(&fake, 50, 0).unwrap();
            assert!(e.interval.0 < e.fid && e.fid < e.interval.1 && e.std_error > 0.0);
        }
    }

    #[test]
    fn kid_is_near_zero_for_one_distribution_and_positive_for_two() {
        // For equal distributions the estimator is unbiased: its mean over subsets is
        // within a few standard errors of 0; a unit mean shift in every coordinate gives
        // MMD² of the cubic kernel well above that.
        let d = 8;
        let (a, b) = (gaussian_rows(400, d, 0.0, 2), gaussian_rows(400, d, 0.0, 3));
        let c = gaussian_rows(400, d, 1.0, 4);
        let (same, sd) = kid(&a, &b, d, 20, 100, 0).unwrap();
        let (diff, _) = kid(&a, &c, d, 20, 100, 0).unwrap();
        assert!(
            same.abs() < 4.0 * sd / 20f64.sqrt() + 1e-12,
            "{same} ± {sd}"
        );
        assert!(diff > 10.0 * sd, "{diff} vs {sd}");
    }

    #[test]
    fn precision_and_recall_see_a_missing_mode() {
        // Real: two clusters; fake: only the first. Precision ≈ 1, recall ≈ 1/2.
        let d = 2;
        let mut real = gaussian_rows(100, d, 0.0, 5);
        real.extend(gaussian_rows(100, d, 50.0, 6));
        let fake = gaussian_rows(100, d, 0.0, 7);
        let (p, r) = precision_recall(&real, &fake, d, 3).unwrap();
        assert!(p > 0.9, "{p}");
        assert!((0.4..=0.6).contains(&r), "{r}");
    }
}
