//! Samplers: plain functions of (denoiser, σ grid, start state, options).
//!
//! Every sampler integrates from `sigmas[start_index]` down the grid (which, as made by
//! [`crate::sigmas`], ends with σ = 0), counts its network evaluations (NFE) and can
//! report each step through a callback (for a progress bar, or to record the
//! trajectory). Starting at an index k > 0 is how analytical teleportation plugs in:
//! a closed-form solution carries x from σ_0 to σ_k and the sampler does the rest.
//!
//! - Euler: EDM Algorithm 1 without the Heun correction (DDIM in EDM's
//!   parameterisation). NFE = N − k.
//! - Heun with churn: EDM Algorithm 2. NFE = 2(N − k) − 1.
//! - DPM-Solver++(2M): Lu et al. 2022, in the multistep form of k-diffusion's
//!   `sample_dpmpp_2m`. NFE = N − k.
//! - Euler-ancestral: k-diffusion's `sample_euler_ancestral` (stochastic). NFE = N − k.

use burn::tensor::Tensor;

use crate::denoiser::{Conditioning, Denoiser};
use crate::error::{Result, ScoreError};
use crate::tensor::{randn_like, sigma_tensor, stream_rng};

/// What a sampler reports after each step.
pub struct StepInfo<'a, const D: usize> {
    /// The grid index i of this step (from σ_i to σ_{i+1}).
    pub index: usize,
    /// σ_i.
    pub sigma: f64,
    /// σ_{i+1}.
    pub sigma_next: f64,
    /// The state after the step, at σ_{i+1}.
    pub x: &'a Tensor<D>,
    /// The denoiser output at the start of the step.
    pub denoised: &'a Tensor<D>,
    /// Network evaluations so far.
    pub nfe: usize,
    /// Number of steps this call will take in all.
    pub total_steps: usize,
}

/// The options shared by all samplers: where to start, conditioning, and a step
/// callback.
#[derive(Default)]
pub struct SampleContext<'a, const D: usize> {
    /// Grid index to start from: x is taken to be at σ_{start_index}.
    pub start_index: usize,
    /// Conditioning passed to every denoiser call.
    pub cond: Option<&'a Conditioning>,
    /// Called after each step.
    #[allow(clippy::type_complexity)]
    pub on_step: Option<Box<dyn FnMut(&StepInfo<'_, D>) + 'a>>,
}

impl<'a, const D: usize> SampleContext<'a, D> {
    /// Start at grid index 0 with no conditioning and no callback.
    pub fn new() -> Self {
        Self {
            start_index: 0,
            cond: None,
            on_step: None,
        }
    }

    /// Start at grid index `k`.
    pub fn start_at(mut self, k: usize) -> Self {
        self.start_index = k;
        self
    }

    /// Pass `cond` to every denoiser call.
    pub fn with_cond(mut self, cond: &'a Conditioning) -> Self {
        self.cond = Some(cond);
        self
    }

    /// Call `f` after each step.
    pub fn on_step(mut self, f: impl FnMut(&StepInfo<'_, D>) + 'a) -> Self {
        self.on_step = Some(Box::new(f));
        self
    }

    fn report(&mut self, info: StepInfo<'_, D>) {
        if let Some(f) = self.on_step.as_mut() {
            f(&info);
        }
    }
}

/// A sampler's result.
#[derive(Debug, Clone)]
pub struct SampleOutput<const D: usize> {
    /// The final state (at the last σ of the grid, normally 0).
    pub x: Tensor<D>,
    /// Network evaluations used.
    pub nfe: usize,
}

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

fn check_grid(sigmas: &[f64], start: usize) -> Result<()> {
    if sigmas.len() < 2 {
        return Err(ScoreError::invalid(
            "sigmas",
            format!("need at least 2 levels, got {}", sigmas.len()),
        ));
    }
    if start + 1 >= sigmas.len() {
        return Err(ScoreError::invalid(
            "start_index",
            format!(
                "{start} leaves no step on a grid of {} levels",
                sigmas.len()
            ),
        ));
    }
    if sigmas.iter().any(|s| !s.is_finite() || *s < 0.0) || sigmas.windows(2).any(|w| w[1] >= w[0])
    {
        return Err(ScoreError::invalid(
            "sigmas",
            "must be finite, non-negative and strictly decreasing",
        ));
    }
    Ok(())
}

fn eval<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    x: &Tensor<D>,
    sigma: f64,
    cond: Option<&Conditioning>,
    nfe: &mut usize,
) -> Tensor<D> {
    *nfe += 1;
    let b = x.dims()[0];
    den.denoise(x.clone(), sigma_tensor(sigma, b, &x.device()), cond)
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
        ctx.report(StepInfo {
            index: i,
            sigma: s,
            sigma_next: s_next,
            x: &x,
            denoised: &den_x,
            nfe,
            total_steps: total,
        });
    }
    Ok(SampleOutput { x, nfe })
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
        ctx.report(StepInfo {
            index: i,
            sigma: s,
            sigma_next: s_next,
            x: &x,
            denoised: &den_hat,
            nfe,
            total_steps: total,
        });
    }
    Ok(SampleOutput { x, nfe })
}

/// DPM-Solver++(2M) (Lu et al. 2022) in k-diffusion's multistep form, with t = −ln σ and
/// h = t_{i+1} − t_i: the first step (and a step that lands on σ = 0) is first order,
/// x_{i+1} = (σ_{i+1}/σ_i)·x_i − (e^{−h} − 1)·D_i; later steps use
/// D̃ = (1 + 1/(2r))·D_i − (1/(2r))·D_{i−1}, r = h_{i−1}/h. NFE = N − k.
pub fn dpmpp_2m_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let total = sigmas.len() - 1 - ctx.start_index;
    let (mut x, mut nfe) = (x, 0);
    let mut old: Option<(Tensor<D>, f64)> = None; // (D_{i-1}, h_{i-1})
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let den_x = eval(den, &x, s, ctx.cond, &mut nfe);
        if s_next == 0.0 {
            x = den_x.clone();
        } else {
            let h = s.ln() - s_next.ln();
            let target = match &old {
                Some((d_prev, h_prev)) => {
                    let r = h_prev / h;
                    den_x.clone().mul_scalar(1.0 + 1.0 / (2.0 * r))
                        - d_prev.clone().mul_scalar(1.0 / (2.0 * r))
                }
                None => den_x.clone(),
            };
            x = x.mul_scalar(s_next / s) - target.mul_scalar((-h).exp_m1());
            old = Some((den_x.clone(), h));
        }
        ctx.report(StepInfo {
            index: i,
            sigma: s,
            sigma_next: s_next,
            x: &x,
            denoised: &den_x,
            nfe,
            total_steps: total,
        });
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
        ctx.report(StepInfo {
            index: i,
            sigma: s,
            sigma_next: s_next,
            x: &x,
            denoised: &den_x,
            nfe,
            total_steps: total,
        });
    }
    Ok(SampleOutput { x, nfe })
}

/// A sampler chosen at run time (CLI, configuration files).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Sampler {
    /// [`euler_sample`].
    Euler,
    /// [`heun_sample`].
    Heun(HeunOptions),
    /// [`dpmpp_2m_sample`].
    DpmppTwoM,
    /// [`euler_ancestral_sample`].
    EulerAncestral(AncestralOptions),
}

impl std::str::FromStr for Sampler {
    type Err = ScoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "euler" => Self::Euler,
            "heun" => Self::Heun(HeunOptions::default()),
            "dpmpp-2m" | "dpm++2m" | "dpmpp2m" => Self::DpmppTwoM,
            "euler-ancestral" | "euler-a" => Self::EulerAncestral(AncestralOptions::default()),
            _ => {
                return Err(ScoreError::invalid(
                    "sampler",
                    format!(
                        "unknown sampler '{s}', expected euler, heun, dpmpp-2m or euler-ancestral"
                    ),
                ));
            }
        })
    }
}

impl Sampler {
    /// All samplers with default options, in a fixed order.
    pub fn all() -> [Sampler; 4] {
        [
            Self::Euler,
            Self::Heun(HeunOptions::default()),
            Self::DpmppTwoM,
            Self::EulerAncestral(AncestralOptions::default()),
        ]
    }

    /// The sampler's CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Euler => "euler",
            Self::Heun(_) => "heun",
            Self::DpmppTwoM => "dpmpp-2m",
            Self::EulerAncestral(_) => "euler-ancestral",
        }
    }

    /// Set the seed of a stochastic sampler (no effect on deterministic ones).
    pub fn with_seed(self, seed: u64) -> Self {
        match self {
            Self::Heun(o) => Self::Heun(HeunOptions { seed, ..o }),
            Self::EulerAncestral(o) => Self::EulerAncestral(AncestralOptions { seed, ..o }),
            other => other,
        }
    }

    /// Network evaluations this sampler spends on a grid of `levels` σ values (ending at
    /// 0) when started at index `k`.
    pub fn nfe(&self, levels: usize, k: usize) -> usize {
        let steps = levels.saturating_sub(1 + k);
        match self {
            Self::Heun(_) => (2 * steps).saturating_sub(1),
            _ => steps,
        }
    }

    /// Run this sampler.
    pub fn sample<const D: usize, M: Denoiser<D> + ?Sized>(
        &self,
        den: &M,
        sigmas: &[f64],
        x: Tensor<D>,
        ctx: &mut SampleContext<'_, D>,
    ) -> Result<SampleOutput<D>> {
        match self {
            Self::Euler => euler_sample(den, sigmas, x, ctx),
            Self::Heun(o) => heun_sample(den, sigmas, x, o, ctx),
            Self::DpmppTwoM => dpmpp_2m_sample(den, sigmas, x, ctx),
            Self::EulerAncestral(o) => euler_ancestral_sample(den, sigmas, x, o, ctx),
        }
    }
}
