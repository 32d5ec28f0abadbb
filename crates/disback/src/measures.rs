//! Exact measures of a generator on data with a known density (a Gaussian mixture):
//! sliced W2 and RBF MMD² against fresh data, the cross-entropy E_G[−log p_data], mode
//! coverage and mode-weight error, and the score mismatch of a target.

use burn::tensor::Device;
use score_core::Denoiser;
use score_core::metrics::{rbf_mmd2, sliced_w2};
use score_core::mixture::GaussianMixture;
use score_core::tensor::{from_f64, to_vec_f64};

use crate::error::Result;

/// The measures of one set of generated samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixtureMeasures {
    /// Sliced Wasserstein-2 to fresh data (64 projections).
    pub sliced_w2: f64,
    /// Unbiased RBF MMD² (median-heuristic bandwidth) to fresh data.
    pub mmd2: f64,
    /// E_G[−log p_data(x)] (nats).
    pub cross_entropy: f64,
    /// Modes with at least a quarter of their expected share of samples on them.
    pub modes_covered: usize,
    /// Total variation ½Σ_k|p̂_k − π_k| between the share of samples on each mode and
    /// the mixture weights (samples on no mode count toward none).
    pub mode_weight_error: f64,
    /// Share of samples on no mode.
    pub off_mode: f64,
}

/// Whether `x` lies on component `k`: its squared Mahalanobis distance is at most
/// d + 6·√(2d), six standard deviations above the mean of the χ²_d distribution it
/// follows for a sample of that component.
fn on_mode(gm: &GaussianMixture, k: usize, x: &[f64]) -> bool {
    let d = x.len() as f64;
    let m2: f64 = x
        .iter()
        .zip(&gm.means[k])
        .zip(&gm.variances[k])
        .map(|((x, m), v)| (x - m).powi(2) / v.max(1e-300))
        .sum();
    m2 <= d + 6.0 * (2.0 * d).sqrt()
}

/// The share of `samples` (row-major, dimension d) on each mode, and off every mode.
pub fn mode_shares(gm: &GaussianMixture, samples: &[f64]) -> (Vec<f64>, f64) {
    let d = gm.dim();
    let n = (samples.len() / d).max(1) as f64;
    let mut counts = vec![0usize; gm.len()];
    let mut off = 0usize;
    for (x, k) in samples.chunks(d).zip(gm.assign(samples)) {
        if on_mode(gm, k, x) {
            counts[k] += 1;
        } else {
            off += 1;
        }
    }
    (
        counts.iter().map(|&c| c as f64 / n).collect(),
        off as f64 / n,
    )
}

/// The share of `samples` in each mode's basin (the component of highest
/// responsibility), whether or not they lie on it: a mode whose basin is empty has
/// been dropped.
pub fn basin_shares(gm: &GaussianMixture, samples: &[f64]) -> Vec<f64> {
    let n = (samples.len() / gm.dim()).max(1) as f64;
    let mut counts = vec![0usize; gm.len()];
    for k in gm.assign(samples) {
        counts[k] += 1;
    }
    counts.iter().map(|&c| c as f64 / n).collect()
}

/// All the measures of `samples` against `reference` (fresh data from `gm`).
pub fn mixture_measures(
    gm: &GaussianMixture,
    samples: &[f64],
    reference: &[f64],
    seed: u64,
) -> Result<MixtureMeasures> {
    let d = gm.dim();
    let (shares, off) = mode_shares(gm, samples);
    let covered = shares
        .iter()
        .zip(&gm.weights)
        .filter(|(s, w)| **s >= **w / 4.0)
        .count();
    let tv = 0.5
        * shares
            .iter()
            .zip(&gm.weights)
            .map(|(s, w)| (s - w).abs())
            .sum::<f64>();
    Ok(MixtureMeasures {
        sliced_w2: sliced_w2(samples, reference, d, 64, seed)?,
        mmd2: rbf_mmd2(samples, reference, d)?.0,
        cross_entropy: gm.mean_nll(samples),
        modes_covered: covered,
        mode_weight_error: tv + 0.5 * off,
        off_mode: off,
    })
}

/// The σ at which [`score_mismatch`] is taken.
pub const MISMATCH_SIGMAS: [f64; 4] = [0.05, 0.2, 1.0, 5.0];

/// E_{x₀~G, n, σ}‖s_target(x₀ + σn; σ) − s_true(x₀ + σn; σ)‖², σ uniform over
/// [`MISMATCH_SIGMAS`], for generator samples `x0` (row-major, dimension d) and the
/// noise `noise` (same shape), with s = (D − x)/σ² for both.
pub fn score_mismatch(
    target: &dyn Denoiser<2>,
    truth: &GaussianMixture,
    x0: &[f64],
    noise: &[f64],
) -> Result<f64> {
    let d = truth.dim();
    let n = x0.len() / d;
    let dev = Device::flex();
    let mut total = 0.0;
    for &s in &MISMATCH_SIGMAS {
        let xs: Vec<f64> = x0.iter().zip(noise).map(|(a, b)| a + s * b).collect();
        let t = to_vec_f64(target.denoise(
            from_f64(&xs, [n, d], &dev),
            score_core::tensor::sigma_tensor(s, n, &dev),
            None,
        ))?;
        let sq: f64 = xs
            .chunks(d)
            .zip(t.chunks(d))
            .map(|(x, dt)| {
                let exact = truth.denoise_f64(x, s);
                dt.iter()
                    .zip(&exact)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
            })
            .sum();
        total += sq / (n as f64 * s.powi(4));
    }
    Ok(total / MISMATCH_SIGMAS.len() as f64)
}
