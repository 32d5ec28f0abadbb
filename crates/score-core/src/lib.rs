//! # score-core: the common ground of score-based diffusion (EDM formulation)
//!
//! Karras, Aittala, Aila & Laine, *Elucidating the Design Space of Diffusion-Based
//! Generative Models* (EDM, NeurIPS 2022). Notation: x_σ = x₀ + σ·n, n ~ N(0, I); the
//! denoiser D(x; σ) ≈ E[x₀ | x_σ = x]; the score s = (D − x)/σ² (Tweedie); the
//! probability-flow ODE dx/dσ = (x − D(x; σ))/σ (EDM Eq. 3 with σ(t) = t).
//!
//! - [`sigmas`]: noise-level grids (Karras Eq. 5, VP, VE, log-uniform, linear) and the
//!   VP ↔ EDM change of variables.
//! - [`precond`]: EDM Table 1 preconditionings (EDM, VP, VE), loss weights and training
//!   σ distributions.
//! - [`denoiser`]: the [`Denoiser`] trait, the seam between every score model (neural,
//!   closed-form Gaussian, mixture, empirical, kernel) and every sampler.
//! - [`samplers`]: Euler, Heun with churn (EDM Algorithm 2), DPM-Solver++(2M), (2M) SDE
//!   and (3M) SDE, Euler-ancestral / DDIM with η, UniPC, as plain functions that can
//!   start at any grid index, and the [`Sampler`] registry.
//!   DPM-Solver-v3 with empirical model statistics is [`samplers::dpm_solver_v3`].
//! - [`mixture`]: Gaussian mixtures and 2-D toys with their exact denoisers.
//! - [`guidance`]: classifier-free guidance as a `Denoiser` wrapper.
//! - [`device`]: compute devices by name (`flex`, and `wgpu`/`cuda` behind features).
//! - [`limits`]: memory and overflow checks before large allocations.
//! - [`metrics`]: sliced W2, RBF MMD, memorisation rate, moments, Fréchet distance on
//!   f64 samples (faer for the decompositions).
//! - [`array`]: `ndarray` views in and owned arrays out for the exact-math crates.
//! - [`fs`]: atomic file writes and the cache folder, the only file code here.
//!
//! Networks, data files, evaluation and training live in the crates beside this one:
//! `score-nn`, `score-io`, `score-eval` and `score-train` (see `docs/architecture.md`).
//!
//! ```
//! use burn::tensor::Device;
//! use score_core::{mixture::GaussianMixture, samplers::*, sigmas::karras_sigmas, tensor::*};
//!
//! // Sample a 2-D Gaussian mixture with its exact denoiser and EDM's Heun sampler.
//! let device = Device::flex();
//! let gm = GaussianMixture::ring(8, 2.0, 0.1).unwrap();
//! let sigmas = karras_sigmas(18, 0.002, 80.0, 7.0).unwrap();
//! let mut rng = stream_rng(0, 0, 0);
//! let x = randn([64, 2], &mut rng, &device).mul_scalar(80.0);
//! let out = heun_sample(&gm, &sigmas, x, &HeunOptions::default(), &mut SampleContext::new()).unwrap();
//! assert_eq!(out.nfe, 35);
//! ```

pub mod array;
pub mod denoiser;
pub mod device;
pub mod error;
pub mod fs;
pub mod guidance;
pub mod limits;
pub mod metrics;
pub mod mixture;
pub mod precond;
pub mod samplers;
pub mod sigmas;
pub mod tensor;

pub use denoiser::{Conditioning, Denoiser};
pub use error::{Result, ScoreError};
pub use precond::Precond;
pub use samplers::{SampleContext, SampleOutput, Sampler};

/// Re-export of burn, so downstream crates use the same version.
pub use burn;
