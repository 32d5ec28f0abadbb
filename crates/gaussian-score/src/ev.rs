//! Explained-variance analysis of a trained network against closed-form scores
//! (Wang & Vastola 2024, Sec. 4): per σ, on probe points x₀ + σn,
//! EV_score = 1 − Σ‖s_nn − s_approx‖²/Σ‖s_nn‖² (the paper's measure) and
//! EV_denoiser = 1 − Σ‖D_nn − D_approx‖²/Σ‖D_nn‖², the same measure applied to the
//! denoiser as `gaussian-score.md` specifies. (Images are not centred, so at large σ,
//! where D_nn is close to the data mean for every probe, the denoiser EV mostly reflects
//! how well the mean is matched.) Both follow from denoisers, since s = (D − x)/σ².

use burn::tensor::Tensor;
use score_core::tensor::{from_f64_as, randn_like, sigma_tensor, stream_rng, to_vec_f64};
use score_core::{Conditioning, Denoiser};

use crate::error::Result;
use crate::teleport::score_ev;

/// One row of the EV table: one σ, one approximation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvRow {
    /// Noise level.
    pub sigma: f64,
    /// Name of the approximation ("gaussian", "gmm-10", "delta", ...).
    pub approx: String,
    /// Probe set ("train" or "heldout").
    pub probes: String,
    /// EV of the score.
    pub score_ev: f64,
    /// EV of the denoiser.
    pub denoiser_ev: f64,
}

/// EV of `approx` against the network `nn` at each σ, on probes x₀ + σn with the rows of
/// `x0` (shape `[B, …]`); the same noise draws for every approximation.
pub fn ev_table<const D: usize>(
    nn: &dyn Denoiser<D>,
    approx: &[(String, &dyn Denoiser<D>)],
    x0: Tensor<D>,
    probes: &str,
    sigmas: &[f64],
    seed: u64,
    cond: Option<&Conditioning>,
) -> Result<Vec<EvRow>> {
    let b = x0.dims()[0];
    let mut rows = Vec::new();
    for (i, &s) in sigmas.iter().enumerate() {
        let mut rng = stream_rng(seed, 0x4556, i as u64);
        let noise = randn_like(&x0, &mut rng);
        let x = x0.clone() + noise.mul_scalar(s);
        let sig = sigma_tensor(s, b, &x.device());
        let xs = to_vec_f64(x.clone())?;
        let d_nn = to_vec_f64(nn.denoise(x.clone(), sig.clone(), cond))?;
        for (name, a) in approx {
            let d_a = to_vec_f64(a.denoise(x.clone(), sig.clone(), None))?;
            rows.push(EvRow {
                sigma: s,
                approx: name.clone(),
                probes: probes.into(),
                score_ev: score_ev(&xs, &d_nn, &d_a),
                denoiser_ev: denoiser_ev(&d_nn, &d_a),
            });
        }
    }
    Ok(rows)
}

/// Denoiser EV, 1 − Σ‖D_ref − D_approx‖²/Σ‖D_ref‖².
pub fn denoiser_ev(d_ref: &[f64], d_approx: &[f64]) -> f64 {
    let err: f64 = d_ref
        .iter()
        .zip(d_approx)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let norm: f64 = d_ref.iter().map(|a| a * a).sum();
    1.0 - err / norm.max(1e-300)
}

/// Host rows `[n, d]` to a tensor of shape `[n, …shape]`.
pub fn rows_to_tensor<const D: usize>(
    rows: &[f64],
    shape: [usize; D],
    like: &Tensor<D>,
) -> Tensor<D> {
    from_f64_as(rows, shape, like.dtype(), &like.device())
}
