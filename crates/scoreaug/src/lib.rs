//! # scoreaug
//!
//! Score augmentation (Hou et al., *Score Augmentation for Diffusion Models*, arXiv
//! 2508.07926, 2025; specification in `shared/papers/scoreaug.md`) beside EDM's
//! non-leaky augmentation (Karras et al. 2022), for score-core's training:
//!
//! - [`transforms`]: rot90, flips, zero-padded integer translation, cutout and
//!   brightness on `[B, C, H, W]` batches, each with its parameter vector ω (identity
//!   ω = 0) and, where one exists, its exact inverse; random samplers.
//! - [`objective`]: ScoreAug, NLA and NLA + ScoreAug as `score_train::train::Objective`s
//!   (the one training loop of score-core runs them), with the ω-conditioning switch.
//! - [`theory`]: the optimal ScoreAug denoiser of a known distribution as a wrapper
//!   T·D(T⁻¹y; σ), and the noise statistic that tells visible transforms from hidden ones.
//! - [`measures`]: equivariance error, train vs held-out loss, leakage and memorisation.
//!
//! ```no_run
//! use scoreaug::objective::{Augment, Mode};
//! use scoreaug::transforms::Kind;
//! # fn f(net: score_nn::unet::UNet, data: &score_train::train::ImageData, cfg: &score_train::train::TrainConfig) -> score_core::Result<()> {
//! // The UNet needs `augment_dim = objective.augment_dim()` (17).
//! let objective = Augment::new(Mode::ScoreAug, 0.5, Kind::ALL.to_vec(), true)?;
//! let out = score_train::train::TrainOutput::default();
//! let result = score_train::train::train_with(net, data, cfg, &objective,
//!                                            serde_json::Value::Null, &out, None)?;
//! # Ok(()) }
//! ```

pub mod edm_pipe;
pub mod error;
pub mod measures;
pub mod objective;
pub mod theory;
pub mod transforms;

pub use error::{AugError, Result};
pub use objective::{Augment, Mode};
pub use score_core::Conditioning;
