//! # Samplers: plain functions of (denoiser, σ grid, start state, options).
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
//! - DPM-Solver-v3 (Zheng et al. 2023) with empirical model statistics:
//!   [`dpm_solver_v3`].
//!
//! One file per family; [`registry`] holds the [`Sampler`] enum that names each with
//! its options. Shared pieces (the context, the output, the grid check) are in
//! [`context`].

pub mod context;
pub mod dpm_solver_v3;
pub mod dpmpp;
pub mod euler;
pub mod heun;
pub mod registry;
pub mod unipc;

pub use context::{SampleContext, SampleOutput, StepInfo};
pub use dpm_solver_v3::{ModelStatistics, V3Options, V3Sampler, dpm_solver_v3_sample};
pub use dpmpp::{SdeOptions, dpmpp_2m_sample, dpmpp_2m_sde_sample, dpmpp_3m_sde_sample};
pub use euler::{
    AncestralOptions, ddim_vp_sample, euler_ancestral_sample, euler_sample, vp_coefficients,
};
pub use heun::{HeunOptions, heun_sample};
pub use registry::{GivenOptions, OPTIONS, OptionKind, OptionValue, Sampler, SamplerOption};
pub use unipc::{UniPcOptions, unipc_sample};
