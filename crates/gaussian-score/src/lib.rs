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
//!
//! Data, points and results are `ndarray` arrays (re-exported as
//! [`ndarray`](crate::ndarray)): views in (`[n, d]`, one point per row), owned arrays
//! out; faer reads a standard-layout array in place for the decompositions.
//!
//! ```
//! use gaussian_score::GaussianScore;
//! use gaussian_score::ndarray::array;
//!
//! // Three points in 2-D; the fitted denoiser at σ = 1 shrinks towards their mean.
//! let data = array![[0.0, 1.0], [2.0, 1.0], [1.0, 4.0]];
//! let g = GaussianScore::fit(data.view(), None).unwrap();
//! let d = g.denoise_f64(data.view(), 1.0);
//! assert_eq!(d.dim(), (3, 2));
//! assert!((g.mean[1] - 2.0).abs() < 1e-12);
//! ```

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
pub use ndarray;
pub use teleport::{AutoSkip, Skip, auto_skip, teleport_sample, teleport_sample_vp};
