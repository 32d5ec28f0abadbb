//! Heun's method with churn: EDM Algorithm 2.

use super::context::{SampleContext, SampleOutput, check_grid, eval};
use crate::denoiser::Denoiser;
use crate::error::Result;
use crate::tensor::{randn_like, stream_rng};
use burn::tensor::Tensor;

/// Options of EDM's stochastic Heun sampler (Algorithm 2). The defaults (S_churn = 0)
/// give the deterministic sampler.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeunOptions {
    /// S_churn: total amount of noise injected (0 = deterministic).
    pub s_churn: f64,
    /// S_tmin: churn only where σ ≥ S_tmin.
    pub s_tmin: f64,
    /// S_tmax: churn only where σ ≤ S_tmax.
    pub s_tmax: f64,
    /// S_noise: scale of the injected noise.
    pub s_noise: f64,
    /// Seed of the injected noise.
    pub seed: u64,
}

impl Default for HeunOptions {
    fn default() -> Self {
        Self {
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_noise: 1.0,
            seed: 0,
        }
    }
}

/// EDM's Heun sampler with churn (Karras et al. 2022, Algorithm 2). With
/// S_churn = 0 it is the deterministic second-order sampler; NFE = 2(N − k) − 1 when the
/// grid ends at σ = 0 (the last step is a plain Euler step).
pub fn heun_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    opts: &HeunOptions,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let n_steps = (sigmas.len() - 1) as f64;
    let total = sigmas.len() - 1 - ctx.start_index;
    let (mut x, mut nfe) = (x, 0);
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let gamma = if opts.s_churn > 0.0 && s >= opts.s_tmin && s <= opts.s_tmax {
            (opts.s_churn / n_steps).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        };
        let s_hat = s * (1.0 + gamma);
        let x_hat = if gamma > 0.0 {
            let mut rng = stream_rng(opts.seed, 0x4845_554e, i as u64);
            let eps = randn_like(&x, &mut rng);
            x.clone() + eps.mul_scalar((s_hat * s_hat - s * s).sqrt() * opts.s_noise)
        } else {
            x.clone()
        };
        let den_hat = eval(den, &x_hat, s_hat, ctx.cond, &mut nfe);
        let d = (x_hat.clone() - den_hat.clone()).div_scalar(s_hat);
        let mut x_next = x_hat.clone() + d.clone().mul_scalar(s_next - s_hat);
        if s_next > 0.0 {
            let den_next = eval(den, &x_next, s_next, ctx.cond, &mut nfe);
            let d_prime = (x_next.clone() - den_next).div_scalar(s_next);
            x_next = x_hat + (d + d_prime).mul_scalar(0.5 * (s_next - s_hat));
        }
        x = x_next;
        ctx.step_done(i, (s, s_next), &x, &den_hat, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}
