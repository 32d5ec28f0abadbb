//! Explained-variance analysis of a trained network against closed-form scores
//! (Wang & Vastola 2024, Sec. 4): per σ, on probe points x₀ + σn, per sample
//! EV_score = 1 − ‖s_nn − s_approx‖²/‖s_nn‖² and EV_denoiser = 1 − ‖D_nn − D_approx‖²/‖D_nn‖²,
//! averaged over the probes, as the paper's reference code computes them
//! (`explained_var_vec`, one value per row). The pooled ratio of sums over the batch
//! (`*_pooled`) is kept beside it under its own name: it weights samples by ‖s_nn‖² and
//! is what [`crate::auto_skip`]'s threshold is stated in. (Images are not centred, so at large σ,
//! where D_nn is close to the data mean for every probe, the denoiser EV mostly reflects
//! how well the mean is matched.) Both follow from denoisers, since s = (D − x)/σ².

use burn::tensor::Tensor;
use ndarray::{Array2, ArrayView2};
use score_core::array::{row_major, rows_of};
use score_core::tensor::{from_f64_as, randn_like, sigma_tensor, stream_rng, to_vec_f64};
use score_core::{Conditioning, Denoiser};

use crate::error::Result;

/// One row of the EV table: one σ, one approximation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvRow {
    /// Noise level.
    pub sigma: f64,
    /// Name of the approximation ("gaussian", "gmm-10", "delta", ...).
    pub approx: String,
    /// Probe set ("train" or "heldout").
    pub probes: String,
    /// EV of the score, per sample, averaged over the probes.
    pub score_ev: f64,
    /// EV of the denoiser, per sample, averaged over the probes.
    pub denoiser_ev: f64,
    /// EV of the score pooled over the probes (ratio of sums).
    pub score_ev_pooled: f64,
    /// EV of the denoiser pooled over the probes.
    pub denoiser_ev_pooled: f64,
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
    for &s in sigmas {
        // The probes' noise depends on σ's value, not its place in the list, so a σ
        // gives the same row whatever other σ are asked for (issue 27).
        let mut rng = stream_rng(seed, 0x4556, s.to_bits());
        let noise = randn_like(&x0, &mut rng);
        let x = x0.clone() + noise.mul_scalar(s);
        let sig = sigma_tensor(s, b, &x.device());
        let xs = tensor_rows(x.clone())?;
        let d_nn = tensor_rows(nn.denoise(x.clone(), sig.clone(), cond))?;
        for (name, a) in approx {
            let d_a = tensor_rows(a.denoise(x.clone(), sig.clone(), None))?;
            let (xs, d_nn, d_a) = (xs.view(), d_nn.view(), d_a.view());
            rows.push(EvRow {
                sigma: s,
                approx: name.clone(),
                probes: probes.into(),
                score_ev: score_ev(xs, d_nn, d_a),
                denoiser_ev: denoiser_ev(d_nn, d_a),
                score_ev_pooled: score_ev_pooled(xs, d_nn, d_a),
                denoiser_ev_pooled: denoiser_ev_pooled(d_nn, d_a),
            });
        }
    }
    Ok(rows)
}

/// 1 − Σ‖a − b‖²/Σ‖a − x‖² over all rows at once (`x` = 0 for a plain ratio).
fn pooled(a: &[f64], b: &[f64], x: Option<&[f64]>) -> f64 {
    let err: f64 = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum();
    let norm: f64 = match x {
        Some(x) => a.iter().zip(x).map(|(a, x)| (a - x).powi(2)).sum(),
        None => a.iter().map(|a| a * a).sum(),
    };
    1.0 - err / norm.max(1e-300)
}

/// Mean over rows of length `d` of [`pooled`] within each row.
fn per_sample(a: &[f64], b: &[f64], x: Option<&[f64]>, d: usize) -> f64 {
    let n = a.len() / d.max(1);
    let sum: f64 = (0..n)
        .map(|i| {
            let r = i * d..(i + 1) * d;
            pooled(&a[r.clone()], &b[r.clone()], x.map(|x| &x[r]))
        })
        .sum();
    sum / n.max(1) as f64
}

/// The rows of a batch tensor `[B, …]` as a `[B, d]` array in float64.
pub fn tensor_rows<const D: usize>(t: Tensor<D>) -> Result<Array2<f64>> {
    let b = t.dims()[0];
    let v = to_vec_f64(t)?;
    let d = v.len().checked_div(b).unwrap_or(0);
    Ok(rows_of(v, d))
}

/// Score EV per sample, averaged: mean_i [1 − ‖s_ref,i − s_approx,i‖²/‖s_ref,i‖²], from
/// denoiser outputs at the states `x` (one per row; s = (D − x)/σ², and σ cancels
/// within a row).
pub fn score_ev(x: ArrayView2<f64>, d_ref: ArrayView2<f64>, d_approx: ArrayView2<f64>) -> f64 {
    per_sample(
        &row_major(d_ref),
        &row_major(d_approx),
        Some(&row_major(x)),
        x.ncols(),
    )
}

/// Denoiser EV per sample, averaged: mean_i [1 − ‖D_ref,i − D_approx,i‖²/‖D_ref,i‖²].
pub fn denoiser_ev(d_ref: ArrayView2<f64>, d_approx: ArrayView2<f64>) -> f64 {
    per_sample(&row_major(d_ref), &row_major(d_approx), None, d_ref.ncols())
}

/// Score EV pooled over the batch, 1 − Σ‖s_ref − s_approx‖²/Σ‖s_ref‖².
pub fn score_ev_pooled(
    x: ArrayView2<f64>,
    d_ref: ArrayView2<f64>,
    d_approx: ArrayView2<f64>,
) -> f64 {
    pooled(&row_major(d_ref), &row_major(d_approx), Some(&row_major(x)))
}

/// Denoiser EV pooled over the batch, 1 − Σ‖D_ref − D_approx‖²/Σ‖D_ref‖².
pub fn denoiser_ev_pooled(d_ref: ArrayView2<f64>, d_approx: ArrayView2<f64>) -> f64 {
    pooled(&row_major(d_ref), &row_major(d_approx), None)
}

/// The rows of `rows` (`[n, d]`) as a tensor of shape `[n, …shape]`, in `like`'s dtype
/// and on its device.
pub fn rows_to_tensor<const D: usize>(
    rows: ArrayView2<f64>,
    shape: [usize; D],
    like: &Tensor<D>,
) -> Tensor<D> {
    from_f64_as(&row_major(rows), shape, like.dtype(), &like.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two samples by hand: references (1, 0) and (10, 0), approximations (0, 0) and
    /// (10, 0): per-sample EVs 0 and 1, mean 0.5; pooled 1 − 1/101. Scores from
    /// denoisers at x = 0 are the same numbers (σ cancels).
    #[test]
    fn per_sample_ev_is_the_mean_of_row_evs_and_pooled_is_the_ratio_of_sums() {
        let r = ndarray::array![[1.0, 0.0], [10.0, 0.0]];
        let a = ndarray::array![[0.0, 0.0], [10.0, 0.0]];
        let x = Array2::zeros((2, 2));
        let (r, a, x) = (r.view(), a.view(), x.view());
        assert_eq!(denoiser_ev(r, a), 0.5);
        assert_eq!(score_ev(x, r, a), 0.5);
        assert!((denoiser_ev_pooled(r, a) - (1.0 - 1.0 / 101.0)).abs() < 1e-15);
        assert!((score_ev_pooled(x, r, a) - (1.0 - 1.0 / 101.0)).abs() < 1e-15);
    }

    #[test]
    fn a_sigma_gives_the_same_row_whatever_list_it_is_in() {
        // Issue 27: `--sigmas 0.1,1` gave 0.4240 at σ = 0.1 where the default list gave
        // 0.4205, because the probes were drawn per position in the list.
        let dev = burn::tensor::Device::flex();
        let nn = score_core::mixture::GaussianMixture::ring(4, 2.0, 0.3).unwrap();
        let g = score_core::mixture::GaussianMixture::gaussian(vec![0.0; 2], vec![2.0; 2]).unwrap();
        let approx: Vec<(String, &dyn Denoiser<2>)> = vec![("g".into(), &g)];
        let x0 = Tensor::<2>::from_data([[2.0, 0.0], [0.0, -2.0], [1.5, 1.5]], &dev);
        let row = |sigmas: &[f64]| {
            let t = ev_table(&nn, &approx, x0.clone(), "p", sigmas, 3, None).unwrap();
            let r = t.iter().find(|r| r.sigma == 0.1).unwrap();
            (r.score_ev, r.denoiser_ev)
        };
        assert_eq!(row(&[0.1, 1.0]), row(&[5.0, 1.0, 0.1]));
    }
}
