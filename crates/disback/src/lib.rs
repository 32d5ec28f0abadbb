//! # disback: one-step distillation of a score-core teacher
//!
//! Zhang et al., *Distribution Backtracking Builds A Faster Convergence Trajectory for
//! One-step Diffusion Distillation* (DisBack, arXiv 2408.15991); specification in
//! `shared/papers/disback.md`.
//!
//! A teacher denoiser (any score-core [`Denoiser`], a network or an exact mixture) is
//! distilled into a one-step generator G(z) = D_η(σ_max·z; σ_max) whose weights start
//! at the teacher's (DMD2's convention) or fresh:
//!
//! - [`config`]: the method (plain score distillation, the baseline, or DisBack), the
//!   gradient's form (DMD2's or plain VSD), optimisers, the σ of the loss, Stage 1's
//!   path and Stage 2's target order (DisBack's backward walk and the spec's controls).
//! - [`gradient`]: the generator's pseudo-gradient and surrogate loss, in one place.
//! - [`teacher`]: teachers and the generator.
//! - [`path`]: Stage 1, degradation recording (a copy of the teacher trained by DSM on
//!   the initial generator's samples, N checkpoints on a log-spaced schedule).
//! - [`distill`]: Stage 2 (and the baseline): the run, its checkpoints and exact resume.
//! - [`measures`]: the study's exact metrics on mixtures (cross-entropy, mode coverage
//!   and weights, score mismatch).
//! - [`run`]: where a run writes and how it reports; [`targets`]: the spec's mixtures
//!   and the study's MLP.
//!
//! The study (`cargo xtask experiment disback`: 2-D and 16-D mixtures with exact
//! scores, the controls, the shipped Fashion-MNIST UNet distilled to one step;
//! `docs/disback.md` holds the results) is `scorelab_experiments::disback`.
//!
//! Networks go through score-nn's `ScoreNetwork`/`Preconditioned`, and every update
//! through score-train's `train::Learner` (AdamW, clipping, EMA) and DSM objective.
//!
//! ```
//! use burn::tensor::Device;
//! use disback::{config::*, distill::*, teacher::*};
//! use score_core::Precond;
//! use score_nn::mlp::MlpConfig;
//!
//! let dev = Device::flex().autodiff();
//! let net = MlpConfig::new(2).with_hidden(16).with_blocks(1).init(&dev);
//! let teacher = Teacher::network(net.clone(), Precond::edm(0.5));
//! let mut cfg = DistillConfig::new(Method::Baseline, 3, Precond::edm(0.5), 0);
//! cfg.generator.batch_size = 8;
//! cfg.fake.batch_size = 8;
//! let mut run = Distiller::new(&teacher, net, &[2], &cfg, serde_json::Value::Null,
//!     &RunOutput::default()).unwrap();
//! run.run(&RunOutput::default(), &mut |_, _| Ok(())).unwrap();
//! assert_eq!(run.step(), 3);
//! assert_eq!(run.updates(), 3 * (1 + 5));
//! ```

pub mod config;
pub mod distill;
pub mod error;
pub mod gradient;
pub mod measures;
pub mod path;
pub mod run;
pub mod targets;
pub mod teacher;

pub use error::{DisbackError, Result};
pub use score_core::Denoiser;
