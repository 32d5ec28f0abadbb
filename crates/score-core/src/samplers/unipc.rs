//! UniPC (Zhao et al. 2023): predictor UniP-p and corrector UniC, data prediction.

use super::context::{SampleContext, SampleOutput, check_grid, eval};
use crate::denoiser::Denoiser;
use crate::error::{Result, ScoreError};
use burn::tensor::Tensor;

/// Options of UniPC (Zhao et al. 2023): the order p of the predictor UniP-p (1–3;
/// UniC-p, run after it with the new evaluation, raises the order to p + 1), the B(h)
/// variant and whether to correct.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UniPcOptions {
    /// Predictor order p, 1 to 3 (the first steps use what their history allows).
    pub order: usize,
    /// Apply the corrector UniC (no extra evaluation: it reuses the next step's).
    pub corrector: bool,
    /// B(h) = e^h − 1 ("bh2", the default and the paper's choice for few steps);
    /// false: B(h) = h ("bh1").
    pub bh2: bool,
}

impl Default for UniPcOptions {
    fn default() -> Self {
        Self {
            order: 2,
            corrector: true,
            bh2: true,
        }
    }
}

/// Solve the k × k system `a · x = b` (k ≤ 3) by Gaussian elimination with partial
/// pivoting, in f64.
fn solve_small(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let k = b.len();
    for c in 0..k {
        let p = (c..k)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..k {
            let f = a[r][c] / a[c][c];
            for j in c..k {
                a[r][j] -= f * a[c][j];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; k];
    for r in (0..k).rev() {
        let s: f64 = (r + 1..k).map(|j| a[r][j] * x[j]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

/// UniPC's coefficients for a step of log-σ length h with history ratios `rks`
/// (r_k = (λ_k − λ_0)/h for earlier points, and 1 for the new point in the corrector):
/// returns (ρ, B(h)). `n` = number of unknowns.
fn unipc_rhos(h: f64, rks: &[f64], bh2: bool, corrector: bool) -> (Vec<f64>, f64) {
    let hh = -h; // data prediction
    let b_h = if bh2 { hh.exp_m1() } else { hh };
    let order = rks.len(); // rows of R, each a power of the rks
    let mut phi_k = hh.exp_m1() / hh - 1.0;
    let mut fact = 1.0;
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        b.push(phi_k * fact / b_h);
        fact *= (i + 1) as f64;
        phi_k = phi_k / hh - 1.0 / fact;
    }
    let r: Vec<Vec<f64>> = (0..order)
        .map(|i| rks.iter().map(|rk| rk.powi(i as i32)).collect())
        .collect();
    let rhos = match (corrector, order) {
        (false, 2) => vec![0.5],
        (false, n) => solve_small(
            r[..n - 1].iter().map(|row| row[..n - 1].to_vec()).collect(),
            b[..n - 1].to_vec(),
        ),
        (true, 1) => vec![0.5],
        (true, _) => solve_small(r, b),
    };
    (rhos, b_h)
}

/// UniPC (Zhao et al. 2023) with data prediction, in EDM's variables (α = 1,
/// λ = −ln σ), as diffusers' `UniPCMultistepScheduler`: each step evaluates D at the
/// predicted point, corrects that point with UniC using the new evaluation, then
/// predicts the next with UniP-p from the corrected point and the last p evaluations.
/// The step to σ = 0 returns the last denoised estimate (first order). NFE = N − k.
pub fn unipc_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    opts: &UniPcOptions,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    if !(1..=3).contains(&opts.order) {
        return Err(ScoreError::invalid(
            "order",
            format!("UniPC order must be 1, 2 or 3, got {}", opts.order),
        ));
    }
    let total = sigmas.len() - 1 - ctx.start_index;
    let (mut x, mut nfe) = (x, 0);
    // Evaluations (D, σ), newest first; the previous state and the order used.
    let mut hist: Vec<(Tensor<D>, f64)> = Vec::new();
    let mut last: Option<(Tensor<D>, usize)> = None;
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let den_x = eval(den, &x, s, ctx.cond, &mut nfe);
        // UniC: correct x (predicted from x_prev at σ_prev) with the new evaluation.
        if opts.corrector
            && let Some((x_prev, p)) = &last
        {
            let (m0, s0) = (&hist[0].0, hist[0].1);
            let h = (s0 / s).ln();
            let mut rks: Vec<f64> = hist[1..*p]
                .iter()
                .map(|(_, si)| (s0 / si).ln() / h)
                .collect();
            rks.push(1.0);
            let (rhos, b_h) = unipc_rhos(h, &rks, opts.bh2, true);
            let mut corr = (den_x.clone() - m0.clone()).mul_scalar(rhos[rhos.len() - 1]);
            for (k, (mk, _)) in hist[1..*p].iter().enumerate() {
                corr = corr + (mk.clone() - m0.clone()).mul_scalar(rhos[k] / rks[k]);
            }
            x = x_prev.clone().mul_scalar(s / s0)
                - m0.clone().mul_scalar((-h).exp_m1())
                - corr.mul_scalar(b_h);
        }
        hist.insert(0, (den_x.clone(), s));
        hist.truncate(3);
        if s_next == 0.0 {
            x = den_x.clone();
            last = None;
        } else {
            // UniP-p from the corrected x and the last p evaluations.
            let p = opts.order.min(hist.len());
            let h = (s / s_next).ln();
            let rks: Vec<f64> = hist[1..p].iter().map(|(_, si)| (s / si).ln() / h).collect();
            let mut pred =
                x.clone().mul_scalar(s_next / s) - den_x.clone().mul_scalar((-h).exp_m1());
            if p > 1 {
                let mut all = rks.clone();
                all.push(1.0);
                let (rhos, b_h) = unipc_rhos(h, &all, opts.bh2, false);
                for (k, (mk, _)) in hist[1..p].iter().enumerate() {
                    pred = pred - (mk.clone() - den_x.clone()).mul_scalar(b_h * rhos[k] / rks[k]);
                }
            }
            last = Some((x.clone(), p));
            x = pred;
        }
        ctx.step_done(i, (s, s_next), &x, &den_x, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}
