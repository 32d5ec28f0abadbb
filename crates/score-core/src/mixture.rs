//! Gaussian mixtures with diagonal covariances: synthetic data in any dimension, the
//! 2-D toy sets, and their exact denoisers (the references samplers are tested against).
//!
//! For p = Σ_k π_k N(μ_k, diag(v_k)), the noisy marginal is p_σ = Σ_k π_k N(μ_k,
//! diag(v_k + σ²)) and (Tweedie's formula, E[x₀ | x_σ], per component)
//! D(x; σ) = Σ_k w_k(x)·[μ_k + v_k/(v_k + σ²)·(x − μ_k)],
//! w_k = softmax_k(log π_k − ½ Σ_j log(v_kj + σ²) − ½ Σ_j (x_j − μ_kj)²/(v_kj + σ²)),
//! computed in log space so that it stays finite from σ = 0.002 to σ = 80. Full
//! covariances (and low-rank ones) live in the `gaussian-score` crate.

use burn::tensor::Tensor;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::denoiser::{Conditioning, Denoiser};
use crate::error::{Result, ScoreError};
use crate::tensor::{host_denoise, score_from_denoised};

/// A mixture of Gaussians with diagonal covariances, in float64.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaussianMixture {
    /// Mixture weights π_k (sum to 1).
    pub weights: Vec<f64>,
    /// Component means μ_k, each of length d.
    pub means: Vec<Vec<f64>>,
    /// Component variances (diagonal of Σ_k), each of length d, all ≥ 0.
    pub variances: Vec<Vec<f64>>,
}

impl GaussianMixture {
    /// Build and validate a mixture.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, variances: Vec<Vec<f64>>) -> Result<Self> {
        let k = weights.len();
        if k == 0 || means.len() != k || variances.len() != k {
            return Err(ScoreError::invalid(
                "mixture",
                format!(
                    "{} weights, {} means and {} variance vectors must agree and be non-empty",
                    k,
                    means.len(),
                    variances.len()
                ),
            ));
        }
        let d = means[0].len();
        if d == 0 || means.iter().chain(&variances).any(|v| v.len() != d) {
            return Err(ScoreError::invalid(
                "mixture",
                "every mean and variance vector must have the same, non-zero length",
            ));
        }
        if weights.iter().any(|w| !(*w > 0.0)) || variances.iter().flatten().any(|v| !(*v >= 0.0)) {
            return Err(ScoreError::invalid(
                "mixture",
                "weights must be positive and variances non-negative",
            ));
        }
        let total: f64 = weights.iter().sum();
        let weights = weights.into_iter().map(|w| w / total).collect();
        Ok(Self {
            weights,
            means,
            variances,
        })
    }

    /// One Gaussian N(μ, diag(v)).
    pub fn gaussian(mean: Vec<f64>, variance: Vec<f64>) -> Result<Self> {
        Self::new(vec![1.0], vec![mean], vec![variance])
    }

    /// `k` equal-weight isotropic components of standard deviation `std` on a circle of
    /// the given radius (the classic 8-mode ring for k = 8).
    pub fn ring(k: usize, radius: f64, std: f64) -> Result<Self> {
        let means = (0..k)
            .map(|i| {
                let a = 2.0 * std::f64::consts::PI * i as f64 / k as f64;
                vec![radius * a.cos(), radius * a.sin()]
            })
            .collect();
        Self::new(vec![1.0; k], means, vec![vec![std * std; 2]; k])
    }

    /// A `side × side` grid of isotropic components spanning [−extent, extent]².
    pub fn grid(side: usize, extent: f64, std: f64) -> Result<Self> {
        if side < 2 {
            return Err(ScoreError::invalid(
                "side",
                "a grid needs at least 2 points per side",
            ));
        }
        let mut means = Vec::new();
        for i in 0..side {
            for j in 0..side {
                let f = |t: usize| -extent + 2.0 * extent * t as f64 / (side - 1) as f64;
                means.push(vec![f(i), f(j)]);
            }
        }
        let k = means.len();
        Self::new(vec![1.0; k], means, vec![vec![std * std; 2]; k])
    }

    /// `k` components with means drawn from N(0, spread²·I) in dimension `d` and
    /// isotropic variance `var`.
    pub fn random<R: Rng + ?Sized>(
        k: usize,
        d: usize,
        spread: f64,
        var: f64,
        rng: &mut R,
    ) -> Result<Self> {
        let means = (0..k)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        let z: f64 = StandardNormal.sample(rng);
                        spread * z
                    })
                    .collect::<Vec<f64>>()
            })
            .collect();
        Self::new(vec![1.0; k], means, vec![vec![var; d]; k])
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// The number of components.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Always false: a mixture has at least one component.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Draw `n` samples, row-major `[n, d]`.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let k = self.pick(rng);
            for j in 0..d {
                let z: f64 = StandardNormal.sample(rng);
                out.push(self.means[k][j] + self.variances[k][j].sqrt() * z);
            }
        }
        out
    }

    /// Draw `n` samples of the noisy marginal p_σ, and the component of each.
    pub fn sample_noisy<R: Rng + ?Sized>(&self, n: usize, sigma: f64, rng: &mut R) -> Vec<f64> {
        let mut x = self.sample(n, rng);
        for v in &mut x {
            let z: f64 = StandardNormal.sample(rng);
            *v += sigma * z;
        }
        x
    }

    fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for (k, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return k;
            }
        }
        self.weights.len() - 1
    }

    /// Log-responsibilities (unnormalised) of each component for one point at noise σ.
    fn log_terms(&self, x: &[f64], sigma: f64, out: &mut Vec<f64>) {
        out.clear();
        let s2 = sigma * sigma;
        for k in 0..self.len() {
            let mut t = self.weights[k].ln();
            for j in 0..x.len() {
                let v = self.variances[k][j] + s2;
                let r = x[j] - self.means[k][j];
                t -= 0.5 * (v.ln() + r * r / v + (2.0 * std::f64::consts::PI).ln());
            }
            out.push(t);
        }
    }

    /// log p_σ(x) of one point (σ = 0 gives the data density; every component must then
    /// have positive variances).
    pub fn log_prob(&self, x: &[f64], sigma: f64) -> f64 {
        let mut t = Vec::new();
        self.log_terms(x, sigma, &mut t);
        log_sum_exp(&t)
    }

    /// Mean negative log-likelihood of row-major samples `[n, d]` under the mixture.
    pub fn mean_nll(&self, samples: &[f64]) -> f64 {
        let d = self.dim();
        let n = samples.len() / d;
        -samples
            .chunks_exact(d)
            .map(|x| self.log_prob(x, 0.0))
            .sum::<f64>()
            / n as f64
    }

    /// The exact denoiser D(x; σ) for row-major points `[n, d]`, in float64.
    pub fn denoise_f64(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        let d = self.dim();
        let s2 = sigma * sigma;
        let mut out = vec![0.0; x.len()];
        let mut t = Vec::with_capacity(self.len());
        for (xi, oi) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.log_terms(xi, sigma, &mut t);
            let m = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = t.iter().map(|l| (l - m).exp()).sum();
            for k in 0..self.len() {
                let w = (t[k] - m).exp() / z;
                if w == 0.0 {
                    continue;
                }
                for j in 0..d {
                    let v = self.variances[k][j];
                    let shrink = if v + s2 > 0.0 { v / (v + s2) } else { 0.0 };
                    oi[j] += w * (self.means[k][j] + shrink * (xi[j] - self.means[k][j]));
                }
            }
        }
        out
    }

    /// The exact score ∇ log p_σ(x) = (D(x; σ) − x)/σ², row-major.
    pub fn score_f64(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        score_from_denoised(&self.denoise_f64(x, sigma), x, sigma)
    }

    /// Index of the component nearest (in Mahalanobis distance at σ = 0, with the
    /// log-determinant) to each row: a hard assignment used for mode coverage.
    pub fn assign(&self, samples: &[f64]) -> Vec<usize> {
        let mut t = Vec::new();
        samples
            .chunks_exact(self.dim())
            .map(|x| {
                self.log_terms(x, 0.0, &mut t);
                t.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(k, _)| k)
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// Numerically stable log Σ exp.
pub fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl Denoiser<2> for GaussianMixture {
    /// The exact denoiser, evaluated in float64 on the host and returned as a tensor.
    fn denoise(&self, x: Tensor<2>, sigma: Tensor<1>, _cond: Option<&Conditioning>) -> Tensor<2> {
        host_denoise(x, sigma, |x, s| self.denoise_f64(x, s)).expect("float tensor data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn denoiser_is_tweedie_of_log_density() {
        // The score (D − x)/σ² must equal the finite-difference gradient of log p_σ.
        let gm = GaussianMixture::ring(8, 2.0, 0.1).unwrap();
        let x = [0.7, -1.3];
        for &sigma in &[0.05, 0.5, 3.0] {
            let s = gm.score_f64(&x, sigma);
            for j in 0..2 {
                let h = 1e-5;
                let (mut a, mut b) = (x, x);
                a[j] += h;
                b[j] -= h;
                let fd = (gm.log_prob(&a, sigma) - gm.log_prob(&b, sigma)) / (2.0 * h);
                // Central differences: error O(h²·f''') ≈ 1e-10·|f'''|; relative 1e-6 is ample.
                assert!(
                    (fd - s[j]).abs() <= 1e-6 * s[j].abs().max(1.0),
                    "sigma {sigma}: fd {fd} vs {}",
                    s[j]
                );
            }
        }
    }

    #[test]
    fn denoiser_is_finite_at_extreme_sigmas() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let gm = GaussianMixture::random(10, 50, 3.0, 0.01, &mut rng).unwrap();
        let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin() * 40.0).collect();
        for &s in &[0.002, 80.0] {
            assert!(
                gm.denoise_f64(&x, s).iter().all(|v| v.is_finite()),
                "sigma {s}"
            );
        }
    }

    #[test]
    fn rejects_inconsistent_components() {
        assert!(GaussianMixture::new(vec![1.0], vec![vec![0.0, 1.0]], vec![vec![1.0]]).is_err());
        assert!(GaussianMixture::new(vec![-1.0], vec![vec![0.0]], vec![vec![1.0]]).is_err());
    }
}
