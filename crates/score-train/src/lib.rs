//! # score-train: training score networks
//!
//! - [`train`]: the training loop (EDM's denoising score matching, Eq. 8, and any
//!   [`Objective`]) with Adam, warm-up, clipping, EMA, a divergence guard, atomic
//!   checkpoints and exact resume.
//! - [`fit`]: the one training loop: a [`fit::TrainStep`] driven over a schedule, with
//!   [`fit::Observer`]s for progress and the log (the library prints nothing unless the
//!   caller adds [`fit::ProgressBar`]).
//! - [`checkpoint`]: safetensors checkpoints (model, EMA, optimizer state, metadata).
//! - [`run`]: the run folder (lock, guard against replacing a run, resume) and the
//!   rule that resuming cannot change a run's settings.
//! - [`pipeline`]: the end-to-end recipes the CLI, `xtask` and the benches share: the
//!   demo's network and settings, loading any scorelab checkpoint back into its network,
//!   generating images and measuring them.

pub mod checkpoint;
pub mod edm_pickle;
pub mod fit;
pub mod import;
pub mod pipeline;
pub mod run;
pub mod train;

pub use checkpoint::{CheckpointFile, CheckpointMeta, save_checkpoint};
pub use pipeline::{LoadedModel, ModelSpec, load_model};
pub use run::{RunDir, RunMode, fixed_on_resume};
pub use train::{
    Denoising, Learner, Objective, TrainConfig, TrainData, TrainOutput, TrainResult, train,
    train_with,
};
