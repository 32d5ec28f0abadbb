//! # scorelab-experiments: the papers' studies
//!
//! Each study is a library runner that `cargo xtask experiment NAME` (and, for the
//! explained-variance table, `scorelab gaussian ev`) calls; it writes its numbers and
//! figures and returns them. The paper crates hold the methods; this crate holds what
//! the docs report about them.
//!
//! - [`gaussian`]: the Gaussian-score studies (Wang & Vastola 2024): explained variance
//!   of the Gaussian, mixture and empirical scores against a network, teleportation
//!   sweeps over the skip, and the explained variance over training.
//! - [`ntk`]: the NTK studies (Han et al. 2024): every study of `ntk_theory::study` and
//!   `ntk_theory::decomposition`, written as `ntk.md`, `ntk.json` and SVG plots.
//! - [`samplers`]: the few-step sampler comparison (FID at 5–18 NFE of DPM-Solver++,
//!   UniPC and DPM-Solver-v3 on a UNet checkpoint).
//! - [`scoreaug`]: the ScoreAug overfitting study (Hou et al. 2025): arms × training-set
//!   sizes × seeds, train and held-out loss over training, the measures.
//! - [`disback`]: the DisBack study (Zhang et al. 2024): DisBack against plain score
//!   distillation and the controls on the mixtures, and the image part on the shipped
//!   UNet; `records` holds its serde records, `report` the markdown and plots.

pub mod disback;
pub mod gaussian;
pub mod ntk;
pub mod samplers;
pub mod scoreaug;
