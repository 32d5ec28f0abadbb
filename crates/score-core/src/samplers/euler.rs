//! First-order samplers: Euler (EDM Algorithm 1 without the correction; DDIM in EDM's
//! variables), DDIM in VP variables, and Euler-ancestral / DDIM with η (k-diffusion's
//! `sample_euler_ancestral`).

use super::context::{SampleContext, SampleOutput, check_grid, eval};
use crate::denoiser::Denoiser;
use crate::error::Result;
use crate::tensor::{randn_like, stream_rng};
use burn::tensor::Tensor;

/// Options of the Euler-ancestral sampler.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AncestralOptions {
    /// η: 1 is the ancestral (DDPM-like) sampler, 0 is Euler.
    pub eta: f64,
    /// Scale of the injected noise.
    pub s_noise: f64,
    /// Seed of the injected noise.
    pub seed: u64,
}

impl Default for AncestralOptions {
    fn default() -> Self {
        Self {
            eta: 1.0,
            s_noise: 1.0,
            seed: 0,
        }
    }
}

/// Euler's method on the probability-flow ODE: x_{i+1} = x_i + (σ_{i+1} − σ_i)·d_i with
/// d_i = (x_i − D(x_i; σ_i))/σ_i. NFE = N − k.
pub fn euler_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let (mut x, mut nfe) = (x, 0);
    let total = sigmas.len() - 1 - ctx.start_index;
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let den_x = eval(den, &x, s, ctx.cond, &mut nfe);
        let d = (x.clone() - den_x.clone()).div_scalar(s);
        x = x + d.mul_scalar(s_next - s);
        ctx.step_done(i, (s, s_next), &x, &den_x, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}

/// VP coordinates of EDM level σ: (α, σ_vp) = (1/√(1 + σ²), σ/√(1 + σ²)), so that
/// x_vp = α·x_edm and α² + σ_vp² = 1.
pub fn vp_coefficients(sigma: f64) -> (f64, f64) {
    let a = 1.0 / (1.0 + sigma * sigma).sqrt();
    (a, sigma * a)
}

/// Deterministic DDIM (Song et al. 2021) with the state in VP coordinates,
/// x_vp = α(σ)·x_edm: x̂₀ = D(x_i/α_i; σ_i), x_{i+1} = α_{i+1}x̂₀ + (σ_vp,{i+1}/σ_vp,i)·(x_i
/// − α_i x̂₀). Dividing by α_{i+1} shows it is [`euler_sample`] in EDM variables, step for
/// step; it is here for samplers and closed forms written in VP coordinates (gaussian-score's
/// VP teleport). `x` and the result are VP states; the step callback sees VP states.
/// NFE = N − k.
pub fn ddim_vp_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let (mut x, mut nfe) = (x, 0);
    let total = sigmas.len() - 1 - ctx.start_index;
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let ((a, v), (a_next, v_next)) = (vp_coefficients(s), vp_coefficients(s_next));
        let x0 = eval(den, &x.clone().div_scalar(a), s, ctx.cond, &mut nfe);
        let eps_part = (x - x0.clone().mul_scalar(a)).mul_scalar(v_next / v);
        x = x0.clone().mul_scalar(a_next) + eps_part;
        ctx.step_done(i, (s, s_next), &x, &x0, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}

/// Euler-ancestral sampling (k-diffusion `sample_euler_ancestral`): an Euler step down
/// to σ_down followed by fresh noise of scale σ_up, with
/// σ_up = min(σ_{i+1}, η·sqrt(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²)) and
/// σ_down = sqrt(σ_{i+1}² − σ_up²). NFE = N − k.
pub fn euler_ancestral_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    opts: &AncestralOptions,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let total = sigmas.len() - 1 - ctx.start_index;
    let (mut x, mut nfe) = (x, 0);
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let den_x = eval(den, &x, s, ctx.cond, &mut nfe);
        let s_up =
            (opts.eta * (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt()).min(s_next);
        let s_down = (s_next * s_next - s_up * s_up).sqrt();
        let d = (x.clone() - den_x.clone()).div_scalar(s);
        x = x + d.mul_scalar(s_down - s);
        if s_next > 0.0 && s_up > 0.0 {
            let mut rng = stream_rng(opts.seed, 0x414e_4345, i as u64);
            let eps = randn_like(&x, &mut rng);
            x = x + eps.mul_scalar(s_up * opts.s_noise);
        }
        ctx.step_done(i, (s, s_next), &x, &den_x, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}
