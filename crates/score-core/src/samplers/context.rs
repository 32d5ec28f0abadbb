//! What every sampler shares: the step report, the sampling context (start index and
//! step callback), the output, the grid check and the counted denoiser evaluation.

use crate::denoiser::{Conditioning, Denoiser};
use crate::error::{Result, ScoreError};
use crate::tensor::sigma_tensor;
use burn::tensor::Tensor;

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

pub(super) fn eval<const D: usize, M: Denoiser<D> + ?Sized>(
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
