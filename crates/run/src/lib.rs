//! # scorelab-run: the runs behind scorelab's commands, as library functions
//!
//! Each run takes a typed specification (what the command's flags say, with the
//! defaults filled in) and returns a typed report; the `scorelab` binary parses flags
//! into a specification, calls the run and prints the report, and `xtask` and other
//! programs call the same functions. Progress goes to a callback; the library prints
//! nothing.
//!
//! - [`sample`]: sampling a checkpoint ([`sample::sample`]): a one-step generator in one
//!   evaluation, any registered sampler on a σ grid with classes and guidance,
//!   teleportation from a Gaussian model (EDM or VP coordinates), image by image in
//!   bounded memory ([`per_image`]); [`spec`] holds what a run is given and reports.
//!
//! - [`train`]: training a network ([`train::train_run`]) from a [`train_spec::TrainSpec`]:
//!   settings from the spec or, on resume, the checkpoint ([`train_spec::settings`]: what
//!   a resume may change, what it must restate), the data ([`train_data`]), the network
//!   ([`train_net`]), the run record ([`record`]) and `config.toml` ([`run_file`]).
//!
//! - [`fid`]: FID with a bootstrap interval, KID and precision/recall
//!   ([`fid::fid`]), statistics files ([`fid::fid_stats`]), the demo's held-out
//!   reference.
//!
//! Errors are [`RunError`]: a setting that cannot work, named by its flag, or the error
//! of the crate below that did the work.

pub mod error;
pub mod fid;
mod one_step;
pub mod per_image;
pub mod record;
pub mod run_file;
pub mod sample;
pub mod spec;
pub mod train;
pub mod train_data;
mod train_net;
pub mod train_spec;

pub use error::{Result, RunError};
pub use sample::sample;
pub use spec::{GridSpec, SampleReport, SampleSpec, TeleportSpec};
pub use train::{TrainReport, train_run};
pub use train_spec::TrainSpec;
