//! Analytical teleportation (Wang & Vastola 2024, Sec. 5; reference
//! `benchmark/edm_analytical_massprod_O2.py`): replace the first k steps of any
//! score-core sampler by the closed-form Gaussian solution from (x_T, σ_0) to σ_k,
//! then continue with the sampler on the tail σ_k … σ_N of the same grid. Heun then
//! spends 2(N − k) − 1 network evaluations instead of 2N − 1.
//!
//! [`auto_skip`] picks k from the model itself (our addition; the paper sweeps k): run
//! the model's deterministic Heun sampler on a few probe noises, and at every grid level
//! compare the network's score with the Gaussian's at the model's own states. The score
//! EV, 1 − Σ‖s_nn − s_G‖²/Σ‖s_nn‖², is one minus the squared relative error of the ODE
//! velocity (x − D)/σ = −σ·s that the Gaussian would substitute. k is the number of
//! leading levels with EV ≥ `threshold`; the default 0.9975 allows a 5% relative
//! velocity error (1 − 0.05²).

use burn::tensor::Tensor;
use ndarray::{Array2, ArrayView2};
use score_core::array::row_major;
use score_core::samplers::{
    SampleContext, SampleOutput, Sampler, StepInfo, ddim_vp_sample, vp_coefficients,
};
use score_core::tensor::{from_f64_as, sigma_tensor, to_vec_f64};
use score_core::{Conditioning, Denoiser};

use crate::error::{Result, invalid};
use crate::gaussian::GaussianScore;

/// Where to teleport to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Skip {
    /// Skip the first k grid steps.
    Index(usize),
    /// Skip to the first grid level at or below this σ.
    Sigma(f64),
    /// Skip this fraction of the grid's steps, rounded to the nearest step (`15%`: the
    /// CLI's default, the lower end of the paper's 15–30 %).
    Fraction(f64),
    /// Choose k with [`auto_skip`] at this explained-variance threshold.
    Auto {
        /// Explained-variance threshold (e.g. 0.95).
        threshold: f64,
    },
}

impl Skip {
    /// From the CLI's options: `skip` is a step count, a percentage of the steps (`15%`)
    /// or `auto`; `skip_sigma`, when given, wins; `threshold` is the automatic rule's.
    pub fn from_options(skip: &str, skip_sigma: Option<f64>, threshold: f64) -> Result<Self> {
        Ok(match (skip_sigma, skip) {
            (Some(s), _) if s > 0.0 && s.is_finite() => Self::Sigma(s),
            (Some(s), _) => {
                return Err(invalid("skip_sigma", format!("must be positive, got {s}")));
            }
            (None, "auto") => Self::Auto { threshold },
            (None, p) if p.ends_with('%') => {
                let v: f64 = p[..p.len() - 1].trim().parse().map_err(|_| {
                    invalid("skip", format!("'{p}' is not a percentage such as 15%"))
                })?;
                if !(0.0..100.0).contains(&v) {
                    return Err(invalid("skip", format!("'{p}': a percentage in [0, 100)")));
                }
                Self::Fraction(v / 100.0)
            }
            (None, k) => Self::Index(k.parse().map_err(|_| {
                invalid(
                    "skip",
                    format!("'{k}' is neither a step count, a percentage (15%) nor 'auto'"),
                )
            })?),
        })
    }

    /// The grid index k this skip denotes on `sigmas`, and the network evaluations it
    /// spent finding it (only [`Skip::Auto`] spends any: [`auto_skip`] on `probes`).
    pub fn resolve<const D: usize, M: Denoiser<D> + ?Sized>(
        &self,
        den: &M,
        g: &GaussianScore,
        sigmas: &[f64],
        probes: Tensor<D>,
        cond: Option<&Conditioning>,
    ) -> Result<(usize, usize)> {
        Ok(match *self {
            Self::Index(k) => (k, 0),
            Self::Sigma(s) => (index_for_sigma(sigmas, s), 0),
            Self::Fraction(f) => {
                let steps = sigmas.len().saturating_sub(1);
                ((f * steps as f64).round() as usize, 0)
            }
            Self::Auto { threshold } => {
                let a = auto_skip(den, g, sigmas, probes, threshold, cond)?;
                (a.k, a.nfe)
            }
        })
    }
}

/// The grid index that [`Skip::Sigma`] denotes.
pub fn index_for_sigma(sigmas: &[f64], sigma: f64) -> usize {
    sigmas
        .iter()
        .position(|&s| s <= sigma)
        .unwrap_or(sigmas.len().saturating_sub(1))
}

/// Apply a closed form `f` to the rows of `x` on the host (float64), back in `x`'s shape,
/// device and dtype; `x` must have rows of the Gaussian's dimension.
fn map_rows<const D: usize>(
    g: &GaussianScore,
    x: Tensor<D>,
    f: impl FnOnce(ArrayView2<f64>) -> Array2<f64>,
) -> Result<Tensor<D>> {
    let (shape, dims) = (x.shape(), x.dims());
    let (device, dtype) = (x.device(), x.dtype());
    let xs = to_vec_f64(x)?;
    if xs.len() != dims[0] * g.dim() {
        return Err(invalid(
            "x",
            format!("{dims:?} does not fit a Gaussian of dimension {}", g.dim()),
        ));
    }
    let rows = ArrayView2::from_shape((dims[0], g.dim()), &xs[..])
        .map_err(|e| invalid("x", e.to_string()))?;
    let out = f(rows);
    Ok(from_f64_as(&row_major(out.view()), [dims[0], g.dim()], dtype, &device).reshape(shape))
}

/// Move `x_t` (at σ_T) to σ along the Gaussian's exact probability-flow trajectory.
pub fn teleport_state<const D: usize>(
    g: &GaussianScore,
    x_t: Tensor<D>,
    sigma_t: f64,
    sigma: f64,
) -> Result<Tensor<D>> {
    map_rows(g, x_t, |xs| g.pf_solution(xs, sigma_t, sigma))
}

/// A skip of `k` levels must leave at least one step on the grid.
fn check_skip(k: usize, sigmas: &[f64]) -> Result<()> {
    // `k + 1 >= len` without the overflow of k = usize::MAX.
    if k >= sigmas.len().saturating_sub(1) {
        return Err(invalid(
            "skip",
            format!(
                "k = {k} leaves no step on a grid of {} levels",
                sigmas.len()
            ),
        ));
    }
    Ok(())
}

/// Sample with teleportation: `x_t` is the start state at `sigmas[0]`; the first `k`
/// steps are replaced by the closed form and `sampler` runs from index k.
pub fn teleport_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    g: &GaussianScore,
    sampler: &Sampler,
    sigmas: &[f64],
    x_t: Tensor<D>,
    k: usize,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_skip(k, sigmas)?;
    let x = if k == 0 {
        x_t
    } else {
        teleport_state(g, x_t, sigmas[0], sigmas[k])?
    };
    ctx.start_index = k;
    Ok(sampler.sample(den, sigmas, x, ctx)?)
}

/// Teleportation in VP coordinates (x_vp = α(σ)·x_edm, α = 1/√(1 + σ²); see
/// [`score_core::samplers::vp_coefficients`]): the VP state `x_vp` at σ₀ = `sigmas[0]` is
/// moved to level k by the VP closed form [`GaussianScore::pf_solution_vp`], then
/// deterministic DDIM in VP coordinates ([`score_core::samplers::ddim_vp_sample`]) takes
/// the remaining steps. Returns the VP state at the last level (for a grid ending at
/// σ = 0, α = 1 and it is the EDM sample). The same trajectory as [`teleport_sample`]
/// with Euler, up to rounding.
pub fn teleport_sample_vp<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    g: &GaussianScore,
    sigmas: &[f64],
    x_vp: Tensor<D>,
    k: usize,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_skip(k, sigmas)?;
    let x = if k == 0 {
        x_vp
    } else {
        let ((a0, v0), (ak, vk)) = (vp_coefficients(sigmas[0]), vp_coefficients(sigmas[k]));
        map_rows(g, x_vp, |xs| g.pf_solution_vp(xs, a0, v0, ak, vk))?
    };
    ctx.start_index = k;
    Ok(ddim_vp_sample(den, sigmas, x, ctx)?)
}

/// Default threshold of [`auto_skip`]: a 5% relative error of the ODE velocity.
pub const DEFAULT_AUTO_THRESHOLD: f64 = 1.0 - 0.05 * 0.05;

/// What [`auto_skip`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoSkip {
    /// The number of steps to skip: every level from σ_0 down to σ_k passed.
    pub k: usize,
    /// The score EV of the network by the Gaussian at each level read.
    pub evs: Vec<f64>,
    /// Network evaluations the calibration spent (one per level read, plus the Heun
    /// steps along the trajectory), on the probe batch.
    pub nfe: usize,
}

/// The automatic skip: the per-level score EV of the network by the Gaussian on the
/// network's own deterministic Heun trajectories from `x_t`. The Gaussian replaces the
/// network on [σ_k, σ_0], so k is the last level of the leading run of levels with
/// EV ≥ `threshold` (0 when σ_0 already fails), at most N − 2.
pub fn auto_skip<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    g: &GaussianScore,
    sigmas: &[f64],
    x_t: Tensor<D>,
    threshold: f64,
    cond: Option<&Conditioning>,
) -> Result<AutoSkip> {
    if sigmas.len() < 2 {
        return Err(invalid(
            "sigmas",
            format!("need a grid of at least 2 levels, got {}", sigmas.len()),
        ));
    }
    let (mut evs, mut nfe) = (Vec::new(), 0);
    let mut state = x_t;
    // Walk the model's own trajectory with Heun (deterministic), one level at a time,
    // evaluating the network's denoiser at each level's state.
    for i in 0..sigmas.len() - 1 {
        let s = sigmas[i];
        let b = state.dims()[0];
        let d_nn = den.denoise(state.clone(), sigma_tensor(s, b, &state.device()), cond);
        nfe += 1;
        let xs = crate::ev::tensor_rows(state.clone())?;
        let nn = crate::ev::tensor_rows(d_nn)?;
        let approx = g.denoise_f64(xs.view(), s);
        evs.push(crate::ev::score_ev_pooled(
            xs.view(),
            nn.view(),
            approx.view(),
        ));
        // Stop at a failing level, and at the last level (no step to σ = 0 is needed).
        if evs.last().is_some_and(|&e| e < threshold) || i + 2 == sigmas.len() {
            break;
        }
        let mut ctx = SampleContext::new().start_at(i);
        ctx.cond = cond;
        let grid = &sigmas[..i + 2];
        let out =
            score_core::samplers::heun_sample(den, grid, state, &Default::default(), &mut ctx)?;
        nfe += out.nfe;
        state = out.x;
    }
    let passed = evs.iter().take_while(|&&e| e >= threshold).count();
    let k = passed.saturating_sub(1).min(sigmas.len().saturating_sub(2));
    Ok(AutoSkip { k, evs, nfe })
}

/// A progress callback adaptor for teleported sampling (steps done, steps in all).
pub fn progress<'a, const D: usize>(mut f: impl FnMut(usize, usize) + 'a) -> SampleContext<'a, D> {
    let mut done = 0;
    SampleContext::new().on_step(move |s: &StepInfo<'_, D>| {
        done += 1;
        f(done, s.total_steps)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_must_leave_a_step_and_never_overflows() {
        let grid = [80.0, 1.0, 0.0];
        assert!(check_skip(0, &grid).is_ok() && check_skip(1, &grid).is_ok());
        assert!(check_skip(2, &grid).is_err());
        // `--skip 18446744073709551615`: an error naming the skip, not an overflow.
        let e = check_skip(usize::MAX, &grid).unwrap_err().to_string();
        assert!(e.contains("leaves no step"), "{e}");
        assert!(check_skip(0, &[]).is_err());
    }
}
