//! # gaussian-score: closed-form scores and analytical teleportation
//!
//! B. Wang & J. J. Vastola, *The Unreasonable Effectiveness of Gaussian Score
//! Approximation for Diffusion Models and its Applications* (TMLR 2024, arXiv
//! 2412.09726). Specification and checks: `shared/papers/gaussian-score.md`.
//!
//! - [`gaussian::GaussianScore`]: the Gaussian score (full rank, top-r, randomized
//!   top-r), fitted in float64 with faer's symmetric eigensolver; the closed-form PF-ODE
//!   solution (EDM and VP forms) and the denoiser along it.
//! - [`mixture::MixtureScore`]: Gaussian mixtures (k-means + per-cluster covariance,
//!   full or low rank); [`mixture::DeltaScore`]: the training set's exact score,
//!   streamed in log space.
//! - [`teleport`]: analytical teleportation for every score-core sampler, and the
//!   automatic skip rule.
//! - [`ev`]: explained variance of a trained network's score and denoiser against
//!   these approximations, per σ.
//!
//! Every model implements `score_core::Denoiser`, so score-core's samplers run on it.

pub mod error;
pub mod ev;
pub mod gaussian;
pub mod mixture;
pub mod model;
pub mod teleport;

pub use error::{GaussError, Result};
pub use gaussian::GaussianScore;
pub use mixture::{DeltaScore, MixtureScore};
pub use model::ScoreModel;
pub use teleport::{AutoSkip, Skip, auto_skip, teleport_sample, teleport_sample_vp};
