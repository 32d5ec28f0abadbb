//! # musicscore-gen: text-to-score generation
//!
//! The MusicScore paper's generator (Dai et al. 2024, §4) at CPU scale, on the
//! MusicScore data of `musicscore-data` and on score-core's samplers, score-nn's UNet
//! and MiniLM encoder, and score-train's loop:
//!
//! - [`textscore`]: staff-system images cut from the rendered pages, the prompt bank
//!   encoded by MiniLM, the data set the training loop reads, and the readability and
//!   staff-count adherence measures.
//! - [`autoencoder`]: the KL-regularised autoencoder whose latent space the latent
//!   model diffuses in (Stable Diffusion's design, small).
//! - [`latent`]: training the autoencoder through score-train's loop, encoding and
//!   decoding systems.
//! - [`generator`]: the training set-up, loading a text-to-score checkpoint, and guided
//!   sampling from prompts.
//! - [`systems`]: the staff systems of a corpus at a geometry, and [`systems::Feedback`],
//!   how the pipelines report progress without printing.
//! - [`run`]: the training runs (text-to-score, autoencoder) as library functions with
//!   typed specifications: run folder, resume rule, memory checks, the loop.
//! - [`evaluate`]: the evaluation (adherence, readability, FID-k) as a library function.
//! - [`vocabulary`]: the prompt values a model was trained on, and the check that
//!   refuses or warns about others.
//!
//! Errors are `musicscore_data::MusicScoreError`: every failure here is one of the
//! corpus, its images or a score-core call.

pub mod autoencoder;
pub mod evaluate;
pub mod generator;
pub mod latent;
pub mod run;
pub mod systems;
pub mod textscore;
pub mod vocabulary;
