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
//!   DDIM with η is the same update in EDM's variables (`Sampler::Ddim`, η = 0 default).
//! - DPM-Solver++(2M) SDE and (3M) SDE (k-diffusion's forms; η = 0 gives the ODE
//!   solvers). NFE = N − k.
//! - UniPC (Zhao et al. 2023): predictor UniP-p (p ≤ 3) and corrector UniC, B(h) =
//!   e^h − 1 (bh2) or h (bh1), data prediction. NFE = N − k.

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

    /// Report step `i` from σ = `s.0` to `s.1`.
    pub(crate) fn step_done(
        &mut self,
        index: usize,
        s: (f64, f64),
        x: &Tensor<D>,
        denoised: &Tensor<D>,
        nfe: usize,
        total_steps: usize,
    ) {
        self.report(StepInfo {
            index,
            sigma: s.0,
            sigma_next: s.1,
            x,
            denoised,
            nfe,
            total_steps,
        });
    }

    pub(crate) fn report(&mut self, info: StepInfo<'_, D>) {
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

pub(crate) fn check_grid(sigmas: &[f64], start: usize) -> Result<()> {
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

/// DPM-Solver++(2M) (Lu et al. 2022) in k-diffusion's multistep form, with t = −ln σ and
/// h = t_{i+1} − t_i: the first step (and a step that lands on σ = 0) is first order,
/// x_{i+1} = (σ_{i+1}/σ_i)·x_i − (e^{−h} − 1)·D_i; later steps use
/// D̃ = (1 + 1/(2r))·D_i − (1/(2r))·D_{i−1}, r = h_{i−1}/h (the 2M SDE at η = 0,
/// [`dpmpp_2m_sde_sample`]). NFE = N − k.
pub fn dpmpp_2m_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    // The same update as the 2M SDE with η = 0 (no noise is drawn then).
    let ode = SdeOptions {
        eta: 0.0,
        ..SdeOptions::default()
    };
    dpmpp_2m_sde_sample(den, sigmas, x, &ode, ctx)
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

/// Options of the DPM-Solver++ SDE samplers (Lu et al. 2022, the SDE variants of
/// k-diffusion's `sample_dpmpp_2m_sde` (midpoint form) and `sample_dpmpp_3m_sde`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SdeOptions {
    /// η: 1 is the SDE, 0 the ODE solver of the same order.
    pub eta: f64,
    /// Scale of the injected noise.
    pub s_noise: f64,
    /// Seed of the injected noise.
    pub seed: u64,
    /// (3M only) use the quadratic coefficient 2φ₃ of the exact exponential integrator
    /// instead of the reference's φ₃ (k-diffusion `sample_dpmpp_3m_sde`, DPM-Solver++
    /// `multistep_dpm_solver_third_update`). With φ₃ the solver measures second order
    /// on the exact Gaussian, with 2φ₃ third order (`docs/score-core.md`).
    #[serde(default)]
    pub exact_phi3: bool,
}

impl Default for SdeOptions {
    fn default() -> Self {
        Self {
            eta: 1.0,
            s_noise: 1.0,
            seed: 0,
            exact_phi3: false,
        }
    }
}

/// The SDE noise of step i: σ_{i+1}·sqrt(1 − e^{−2ηh})·s_noise·z (independent normal
/// draws per step from (seed, i); k-diffusion's default Brownian-tree sampler gives
/// increments of the same law on a fixed grid).
fn sde_noise<const D: usize>(
    x: &Tensor<D>,
    opts: &SdeOptions,
    i: usize,
    s_next: f64,
    h: f64,
) -> Option<Tensor<D>> {
    if opts.eta == 0.0 || s_next == 0.0 {
        return None;
    }
    let mut rng = stream_rng(opts.seed, 0x5344_4531, i as u64);
    let scale = s_next * (-(-2.0 * opts.eta * h).exp_m1()).sqrt() * opts.s_noise;
    Some(randn_like(x, &mut rng).mul_scalar(scale))
}

/// DPM-Solver++(2M) SDE with the midpoint correction. With h = ln(σ_i/σ_{i+1}):
/// x ← (σ_{i+1}/σ_i)e^{−ηh}x + (1 − e^{−(1+η)h})D_i, plus ½(1 − e^{−(1+η)h})(D_i −
/// D_{i−1})/r after the first step, plus the noise of [`SdeOptions`]. η = 0 is
/// DPM-Solver++(2M) exactly. NFE = N − k.
pub fn dpmpp_2m_sde_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    opts: &SdeOptions,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let total = sigmas.len() - 1 - ctx.start_index;
    let (mut x, mut nfe) = (x, 0);
    let mut old: Option<(Tensor<D>, f64)> = None;
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let den_x = eval(den, &x, s, ctx.cond, &mut nfe);
        if s_next == 0.0 {
            x = den_x.clone();
        } else {
            let h = (s / s_next).ln();
            let eta_h = opts.eta * h;
            let one_minus = -(-h - eta_h).exp_m1();
            x = x.mul_scalar(s_next / s * (-eta_h).exp()) + den_x.clone().mul_scalar(one_minus);
            if let Some((d_prev, h_prev)) = &old {
                let r = h_prev / h;
                x = x + (den_x.clone() - d_prev.clone()).mul_scalar(0.5 * one_minus / r);
            }
            if let Some(z) = sde_noise(&x, opts, i, s_next, h) {
                x = x + z;
            }
            old = Some((den_x.clone(), h));
        }
        ctx.step_done(i, (s, s_next), &x, &den_x, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}

/// DPM-Solver++(3M) SDE: the third-order multistep data-prediction solver with η·h of
/// added noise, in k-diffusion's `sample_dpmpp_3m_sde` form (h_η = (1 + η)h, φ₂ =
/// (1 − e^{−h_η})/h_η − 1 … ); the first steps use the orders their history allows.
/// η = 0 gives the ODE solver DPM-Solver++(3M). NFE = N − k.
pub fn dpmpp_3m_sde_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    sigmas: &[f64],
    x: Tensor<D>,
    opts: &SdeOptions,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let total = sigmas.len() - 1 - ctx.start_index;
    let (mut x, mut nfe) = (x, 0);
    // (D, h) of the last two steps, newest first.
    let mut hist: Vec<(Tensor<D>, f64)> = Vec::new();
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let den_x = eval(den, &x, s, ctx.cond, &mut nfe);
        if s_next == 0.0 {
            x = den_x.clone();
        } else {
            let h = (s / s_next).ln();
            let h_eta = h * (opts.eta + 1.0);
            x = x.mul_scalar((-h_eta).exp()) + den_x.clone().mul_scalar(-(-h_eta).exp_m1());
            let phi_2 = (-h_eta).exp_m1() / h_eta + 1.0;
            match &hist[..] {
                [(d1, h1), (d2, h2), ..] => {
                    let (r0, r1) = (h1 / h, h2 / h);
                    let d1_0 = (den_x.clone() - d1.clone()).div_scalar(r0);
                    let d1_1 = (d1.clone() - d2.clone()).div_scalar(r1);
                    let diff = d1_0.clone() - d1_1;
                    let first = d1_0 + diff.clone().mul_scalar(r0 / (r0 + r1));
                    let second = diff.div_scalar(r0 + r1);
                    let phi_3 = phi_2 / h_eta - 0.5;
                    // The quadratic term of the exponential integrator is
                    // −2φ₃·d2 (d2 ≈ h²D''/2); k-diffusion and DPM-Solver++ use −φ₃·d2.
                    let c3 = if opts.exact_phi3 { 2.0 * phi_3 } else { phi_3 };
                    x = x + first.mul_scalar(phi_2) - second.mul_scalar(c3);
                }
                [(d1, h1)] => {
                    let r = h1 / h;
                    x = x + (den_x.clone() - d1.clone()).mul_scalar(phi_2 / r);
                }
                [] => {}
            }
            if let Some(z) = sde_noise(&x, opts, i, s_next, h) {
                x = x + z;
            }
            hist.insert(0, (den_x.clone(), h));
            hist.truncate(2);
        }
        ctx.step_done(i, (s, s_next), &x, &den_x, nfe, total);
    }
    Ok(SampleOutput { x, nfe })
}

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

/// A sampler chosen at run time (CLI, configuration files).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// DDIM with η (Song et al. 2021): in EDM's variables its update is
    /// [`euler_ancestral_sample`]'s, so it runs that with η = 0 by default (= Euler).
    Ddim(AncestralOptions),
    /// [`dpmpp_2m_sde_sample`].
    DpmppTwoMSde(SdeOptions),
    /// [`dpmpp_3m_sde_sample`].
    DpmppThreeMSde(SdeOptions),
    /// [`unipc_sample`].
    UniPc(UniPcOptions),
    /// [`crate::dpm_solver_v3::dpm_solver_v3_sample`] with its model statistics (not
    /// parsed from a name: it needs statistics, see `scorelab ems`).
    DpmSolverV3(Box<crate::dpm_solver_v3::V3Sampler>),
}

impl std::str::FromStr for Sampler {
    type Err = ScoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "euler" => Self::Euler,
            "heun" => Self::Heun(HeunOptions::default()),
            "dpmpp-2m" | "dpm++2m" | "dpmpp2m" => Self::DpmppTwoM,
            "euler-ancestral" | "euler-a" => Self::EulerAncestral(AncestralOptions::default()),
            "ddim" => Self::Ddim(AncestralOptions {
                eta: 0.0,
                ..AncestralOptions::default()
            }),
            "dpmpp-2m-sde" => Self::DpmppTwoMSde(SdeOptions::default()),
            "dpmpp-3m-sde" => Self::DpmppThreeMSde(SdeOptions::default()),
            "unipc" => Self::UniPc(UniPcOptions::default()),
            _ => {
                return Err(ScoreError::invalid(
                    "sampler",
                    format!(
                        "unknown sampler '{s}', expected one of {}",
                        Sampler::NAMES.join(", ")
                    ),
                ));
            }
        })
    }
}

impl Sampler {
    /// Every sampler's CLI name.
    pub const NAMES: [&'static str; 8] = [
        "euler",
        "heun",
        "dpmpp-2m",
        "euler-ancestral",
        "ddim",
        "dpmpp-2m-sde",
        "dpmpp-3m-sde",
        "unipc",
    ];

    /// All samplers with default options, in the order of [`Sampler::NAMES`].
    pub fn all() -> Vec<Sampler> {
        Self::NAMES
            .iter()
            .map(|n| n.parse().unwrap_or(Self::Euler))
            .collect()
    }

    /// The sampler's CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Euler => "euler",
            Self::Heun(_) => "heun",
            Self::DpmppTwoM => "dpmpp-2m",
            Self::EulerAncestral(_) => "euler-ancestral",
            Self::Ddim(_) => "ddim",
            Self::DpmppTwoMSde(_) => "dpmpp-2m-sde",
            Self::DpmppThreeMSde(_) => "dpmpp-3m-sde",
            Self::UniPc(_) => "unipc",
            Self::DpmSolverV3(_) => "dpm-solver-v3",
        }
    }

    /// Set the seed of a stochastic sampler (no effect on deterministic ones).
    pub fn with_seed(self, seed: u64) -> Self {
        match self {
            Self::Heun(o) => Self::Heun(HeunOptions { seed, ..o }),
            Self::EulerAncestral(o) => Self::EulerAncestral(AncestralOptions { seed, ..o }),
            Self::Ddim(o) => Self::Ddim(AncestralOptions { seed, ..o }),
            Self::DpmppTwoMSde(o) => Self::DpmppTwoMSde(SdeOptions { seed, ..o }),
            Self::DpmppThreeMSde(o) => Self::DpmppThreeMSde(SdeOptions { seed, ..o }),
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
            Self::EulerAncestral(o) | Self::Ddim(o) => {
                euler_ancestral_sample(den, sigmas, x, o, ctx)
            }
            Self::DpmppTwoMSde(o) => dpmpp_2m_sde_sample(den, sigmas, x, o, ctx),
            Self::DpmppThreeMSde(o) => dpmpp_3m_sde_sample(den, sigmas, x, o, ctx),
            Self::UniPc(o) => unipc_sample(den, sigmas, x, o, ctx),
            Self::DpmSolverV3(v) => {
                crate::dpm_solver_v3::dpm_solver_v3_sample(den, &v.stats, sigmas, x, &v.opts, ctx)
            }
        }
    }
}
