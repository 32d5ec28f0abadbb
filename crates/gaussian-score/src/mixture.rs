//! Gaussian-mixture and delta-mixture (empirical) scores.
//!
//! Mixture (`gaussian-score.md`): s = Σ_i w_i(x)·[−(Σ_i + σ²I)⁻¹(x − μ_i)] with
//! w_i = softmax_i(log π_i − ½ log det(Σ_i + σ²I) − ½ Mahalanobis_i²). For a component of
//! rank r (U_i, λ_i) the log-det is Σ_k log(λ_k + σ²) + (d − r)·log σ² and the
//! Mahalanobis term Σ_k c_k²/(λ_k + σ²) + ‖x^⊥‖²/σ². Fitted like the reference: k-means
//! (k-means++ seeding), then each cluster's covariance with 1e-5 added to the diagonal.
//!
//! Delta mixture (the training set's exact score, which memorises):
//! D(x; σ) = Σ_i w_i x_i, w_i = softmax_i(−‖x − x_i‖²/(2σ²)), computed in log space with a
//! streaming (online) softmax over blocks of training points, so that no N × B × d (or
//! even N × B) buffer is formed.

use burn::tensor::Tensor;
use faer::Mat;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::{RngExt, SeedableRng};
use score_core::array::{on_rows, row_major};
use score_core::tensor::host_denoise;
use score_core::{Conditioning, Denoiser};

use crate::error::{Result, invalid};
use crate::gaussian::GaussianScore;

/// A mixture of (possibly low-rank) Gaussians.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureScore {
    /// Mixture weights π_i.
    pub weights: Vec<f64>,
    /// The components.
    pub components: Vec<GaussianScore>,
}

/// k-means with k-means++ seeding (Arthur & Vassilvitskii 2007): returns the labels.
pub fn kmeans(data: ArrayView2<f64>, k: usize, iters: usize, seed: u64) -> Result<Vec<usize>> {
    let n = crate::gaussian::rows(&data)?;
    let d = data.ncols();
    let data = row_major(data);
    if k == 0 || k > n {
        return Err(invalid(
            "components",
            format!("k = {k} must lie in 1..={n}"),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let dist2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
    let mut centres: Vec<Vec<f64>> = vec![row(rng.random_range(0..n)).to_vec()];
    let mut best: Vec<f64> = (0..n).map(|i| dist2(row(i), &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = best.iter().sum();
        let mut u = rng.random::<f64>() * total;
        let mut pick = n - 1;
        for (i, b) in best.iter().enumerate() {
            if u < *b {
                pick = i;
                break;
            }
            u -= b;
        }
        centres.push(row(pick).to_vec());
        let c = row(pick).to_vec();
        best.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = b.min(dist2(row(i), &c)));
    }
    let mut labels = vec![0usize; n];
    for _ in 0..iters {
        let mut changed = false;
        for (i, l) in labels.iter_mut().enumerate() {
            // k ≥ 1 was checked above, so the minimum exists; 0 is never used.
            let nearest = (0..k)
                .min_by(|&a, &b| dist2(row(i), &centres[a]).total_cmp(&dist2(row(i), &centres[b])))
                .unwrap_or(0);
            changed |= *l != nearest;
            *l = nearest;
        }
        let mut sums = vec![vec![0.0; d]; k];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            counts[l] += 1;
            sums[l].iter_mut().zip(row(i)).for_each(|(s, v)| *s += v);
        }
        for c in 0..k {
            if counts[c] > 0 {
                centres[c] = sums[c].iter().map(|s| s / counts[c] as f64).collect();
            }
        }
        if !changed {
            break;
        }
    }
    Ok(labels)
}

impl MixtureScore {
    /// Fit `k` components: k-means, then per cluster the mean and covariance (plus
    /// 1e-5·I, as the reference) keeping the top `rank` eigenpairs (all when `None`).
    pub fn fit(data: ArrayView2<f64>, k: usize, rank: Option<usize>, seed: u64) -> Result<Self> {
        let labels = kmeans(data, k, 50, seed)?;
        let (n, d) = data.dim();
        let mut weights = Vec::new();
        let mut components = Vec::new();
        for c in 0..k {
            let members: Vec<usize> = (0..n).filter(|&i| labels[i] == c).collect();
            if members.is_empty() {
                continue;
            }
            let g = GaussianScore::fit(data.select(Axis(0), &members).view(), rank)?;
            let r = g.rank();
            // Adding 1e-5·I to a full-rank covariance shifts every eigenvalue by 1e-5.
            let eigvals = if r == d {
                &g.eigvals + 1e-5
            } else {
                g.eigvals.clone()
            };
            weights.push(members.len() as f64 / n as f64);
            components.push(GaussianScore::new(g.mean, eigvals, g.eigvecs)?);
        }
        Ok(Self {
            weights,
            components,
        })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.components.first().map_or(0, GaussianScore::dim)
    }

    /// log(w_k·N(x; μ_k, Σ_k + σ²I)) of every row of `x` for every component, up to the
    /// constant −(d/2)·log 2π: `[k][b]`. One projection (a matrix product) per
    /// component for the whole batch.
    fn log_terms(&self, x: ArrayView2<f64>, sigma: f64) -> Vec<Vec<f64>> {
        let s2 = sigma * sigma;
        let d = self.dim() as f64;
        self.components
            .iter()
            .zip(&self.weights)
            .map(|(g, w)| {
                let r = g.rank();
                let (c, perp) = g.project_rows(x);
                let logdet: f64 =
                    g.eigvals.iter().map(|l| (l + s2).ln()).sum::<f64>() + (d - r as f64) * s2.ln();
                perp.iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let maha: f64 = c
                            .row(i)
                            .iter()
                            .zip(&g.eigvals)
                            .map(|(ck, l)| ck * ck / (l + s2))
                            .sum::<f64>()
                            + p / s2;
                        w.ln() - 0.5 * logdet - 0.5 * maha
                    })
                    .collect()
            })
            .collect()
    }

    /// log p_σ(x) of one point, including the normalising constant.
    pub fn log_prob(&self, x: ArrayView1<f64>, sigma: f64) -> f64 {
        let t: Vec<f64> = self
            .log_terms(x.insert_axis(Axis(0)), sigma)
            .into_iter()
            .map(|v| v[0])
            .collect();
        score_core::mixture::log_sum_exp(&t)
            - 0.5 * self.dim() as f64 * (2.0 * std::f64::consts::PI).ln()
    }

    /// The denoiser D(x; σ) = Σ_k w_k(x)·D_k(x; σ) for the rows of `x`, 256 rows at a
    /// time: per block, every component's responsibilities and denoiser for all rows
    /// at once (matrix products), then the weighted sum.
    pub fn denoise_f64(&self, x: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
        let mut out = Array2::zeros(x.dim());
        for (block, mut out) in x
            .axis_chunks_iter(Axis(0), 256)
            .zip(out.axis_chunks_iter_mut(Axis(0), 256))
        {
            let terms = self.log_terms(block, sigma);
            let dens: Vec<Array2<f64>> = self
                .components
                .iter()
                .map(|g| g.denoise_f64(block, sigma))
                .collect();
            for (i, mut row) in out.rows_mut().into_iter().enumerate() {
                let m = terms.iter().map(|t| t[i]).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = terms.iter().map(|t| (t[i] - m).exp()).sum();
                for (t, den) in terms.iter().zip(&dens) {
                    let w = (t[i] - m).exp() / z;
                    row.iter_mut()
                        .zip(den.row(i))
                        .for_each(|(o, v)| *o += w * v);
                }
            }
        }
        out
    }

    /// The score (D − x)/σ².
    pub fn score_f64(&self, x: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
        (self.denoise_f64(x, sigma) - x) / (sigma * sigma)
    }
}

/// The training set's exact score (a mixture of deltas at the training points).
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaScore {
    /// Training points `[n, d]`, one per row.
    pub data: Array2<f64>,
    /// Training points per block of the streaming softmax.
    pub block: usize,
}

impl DeltaScore {
    /// The empirical score of the rows of `data`.
    pub fn new(data: Array2<f64>) -> Result<Self> {
        crate::gaussian::rows(&data.view())?;
        Ok(Self { data, block: 1024 })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.data.ncols()
    }

    /// D(x; σ) for the rows of `x`, streaming over blocks of training points: per
    /// query a running maximum m, normaliser Z and weighted sum S are rescaled by
    /// exp(m_old − m_new) when a block raises the maximum (the online softmax).
    pub fn denoise_f64(&self, x: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
        let (b, d) = x.dim();
        let n = self.data.nrows();
        let q = Mat::from_fn(b, d, |i, j| x[[i, j]]);
        let qn: Vec<f64> = x
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        let (mut m, mut z, mut s) = (
            vec![f64::NEG_INFINITY; b],
            vec![0.0; b],
            Mat::<f64>::zeros(b, d),
        );
        let inv = 1.0 / (2.0 * sigma * sigma);
        for start in (0..n).step_by(self.block.max(1)) {
            let end = (start + self.block.max(1)).min(n);
            let blk = Mat::from_fn(end - start, d, |i, j| self.data[[start + i, j]]);
            let bn: Vec<f64> = (start..end)
                .map(|i| self.data.row(i).iter().map(|v| v * v).sum())
                .collect();
            let dot = &q * blk.transpose(); // b × block
            let mut w = Mat::<f64>::zeros(b, end - start);
            for i in 0..b {
                let logits: Vec<f64> = (0..end - start)
                    .map(|j| -(qn[i] - 2.0 * dot[(i, j)] + bn[j]).max(0.0) * inv)
                    .collect();
                let bm = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let new_m = m[i].max(bm);
                let scale = if m[i] == f64::NEG_INFINITY {
                    0.0
                } else {
                    (m[i] - new_m).exp()
                };
                z[i] *= scale;
                for jj in 0..d {
                    s[(i, jj)] *= scale;
                }
                for (j, l) in logits.iter().enumerate() {
                    let e = (l - new_m).exp();
                    w[(i, j)] = e;
                    z[i] += e;
                }
                m[i] = new_m;
            }
            s += &w * &blk;
        }
        Array2::from_shape_fn((b, d), |(i, j)| s[(i, j)] / z[i])
    }
}

impl<const D: usize> Denoiser<D> for MixtureScore {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, _cond: Option<&Conditioning>) -> Tensor<D> {
        let d = self.dim();
        host_denoise(x, sigma, |x, s| on_rows(x, d, |v| self.denoise_f64(v, s)))
            .expect("float tensor data")
    }
}

impl<const D: usize> Denoiser<D> for DeltaScore {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, _cond: Option<&Conditioning>) -> Tensor<D> {
        let d = self.dim();
        host_denoise(x, sigma, |x, s| on_rows(x, d, |v| self.denoise_f64(v, s)))
            .expect("float tensor data")
    }
}
