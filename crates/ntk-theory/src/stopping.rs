//! Early stopping for kernel gradient descent.
//!
//! Raskutti, Wainwright & Yu (JMLR 2014, eq. 6): with sup κ ≤ 1 and λ̂_i the eigenvalues
//! of H/N, the empirical kernel complexity R̂(ε) = sqrt(N⁻¹ Σ_i min(λ̂_i, ε²)), and
//! η_k = Σ_{τ<k} α_τ = ηk for a constant step, the rule is
//! T̂ = argmin{k ∈ ℕ : R̂(1/sqrt(η_k)) > 1/(2e·σ̂·η_k)} − 1: the *last* k before the
//! first violation (k − 1, not the violating k). σ̂ is the label-noise level. A kernel with
//! sup κ > 1 is rescaled by its largest diagonal entry first (the step size η then
//! refers to the rescaled kernel). Hold-out: the k with the smallest validation error.

use ndarray::ArrayView1;

use crate::error::{Result, invalid};

/// The RWY stopping step for eigenvalues `eig_h` of H (not divided by N), kernel bound
/// `kappa_max` (sup κ, used to rescale), step η (for the rescaled kernel) and noise
/// level σ̂. Returns k* − 1 for the first k* ≥ 1 that violates the bound (0 when k = 1
/// already violates it: no step is taken), or `k_max` when none up to `k_max` does.
pub fn rwy_stop(
    eig_h: ArrayView1<f64>,
    kappa_max: f64,
    eta: f64,
    sigma_hat: f64,
    k_max: usize,
) -> Result<usize> {
    if !(kappa_max > 0.0 && eta > 0.0 && sigma_hat > 0.0) {
        return Err(invalid(
            "rwy",
            "kappa_max, eta and sigma_hat must be positive",
        ));
    }
    let n = eig_h.len() as f64;
    let lam: Vec<f64> = eig_h.iter().map(|l| (l / kappa_max / n).max(0.0)).collect();
    for k in 1..=k_max {
        let t = eta * k as f64;
        let eps2 = 1.0 / t;
        let r = (lam.iter().map(|l| l.min(eps2)).sum::<f64>() / n).sqrt();
        if r > 1.0 / (2.0 * std::f64::consts::E * sigma_hat * t) {
            return Ok(k - 1);
        }
    }
    Ok(k_max)
}

/// The k in `ks` with the smallest validation error `err(k)`, and that error.
pub fn holdout_stop(ks: &[usize], mut err: impl FnMut(usize) -> f64) -> (usize, f64) {
    ks.iter()
        .map(|&k| (k, err(k)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::INFINITY))
}
