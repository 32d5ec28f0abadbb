//! # score-eval: measuring generated samples
//!
//! - [`fid`]: Fréchet Inception Distance, KID and improved precision/recall with the
//!   FID Inception-v3 as a burn module, loaded from the weights that
//!   `cargo xtask fid-setup` converts; the ZIP, pickle and TorchScript readers that
//!   conversion needs; pytorch-fid `.npz` statistics.
//! - [`plot`]: minimal SVG line plots for reports and docs.
//!
//! Sample metrics on f64 arrays (sliced W2, MMD, memorisation, moments) are
//! `score_core::metrics`; they need no network.

pub mod fid;
pub mod plot;

pub use fid::{
    FeatureStats, FidEstimate, FidInception, FidReference, fid_from_stats, kid, precision_recall,
};
pub use plot::{Plot, Series};
