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
//! - [`samplers`]: Euler, Heun with churn (EDM Algorithm 2), DPM-Solver++(2M) and
//!   Euler-ancestral, as plain functions that can start at any grid index.
//! - [`dpm_solver_v3`]: DPM-Solver-v3 with empirical model statistics.
//! - [`nn`]: an MLP and a DDPM++-style UNet as burn `Module`s, EDM preconditioning
//!   (Eq. 7) and the loss (Eq. 8).
//! - [`train`]: Adam with warm-up and clipping, EMA, safetensors checkpoints, exact
//!   resume, progress bar and JSON-lines log.
//! - [`data`]: Gaussian mixtures and 2-D toys with exact denoisers, IDX and `.npy` I/O,
//!   Fashion-MNIST as a burn `Dataset`, PNG grids.
//! - [`guidance`]: classifier-free guidance as a `Denoiser` wrapper.
//! - [`device`]: compute devices by name (`flex`, and `wgpu`/`cuda` behind features).
//! - [`limits`]: memory and overflow checks before large allocations.
//! - [`metrics`]: sliced W2, RBF MMD, memorisation rate, NLL under a mixture.
//!
//! ```
//! use burn::tensor::Device;
//! use score_core::{data::mixture::GaussianMixture, samplers::*, sigmas::karras_sigmas, tensor::*};
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

pub mod checkpoint;
pub mod data;
pub mod denoiser;
pub mod device;
pub mod dpm_solver_v3;
pub mod error;
pub mod fid;
pub mod guidance;
pub mod limits;
pub mod metrics;
pub mod nn;
pub mod pipeline;
pub mod plot;
pub mod precond;
pub mod samplers;
pub mod sigmas;
pub mod tensor;
pub mod text;
pub mod train;

pub use denoiser::{Conditioning, Denoiser};
pub use error::{Result, ScoreError};
pub use precond::Precond;
pub use samplers::{SampleContext, SampleOutput, Sampler};

/// Re-export of burn, so downstream crates use the same version.
pub use burn;
