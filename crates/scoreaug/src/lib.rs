//! # scoreaug (planned — not implemented yet)
//!
//! Hou et al., *Score Augmentation for Diffusion Models* (arXiv 2508.07926, 2025);
//! specification in `shared/papers/scoreaug.md`.
//!
//! This crate will hold transforms applied to noisy inputs with an equivariant target
//! (ScoreAug), beside EDM's non-leaky augmentation, feeding the augmentation vector into
//! score-core's UNet through its zero-initialised `map_augment` input (already present in
//! `score_core::nn::unet::UNetConfig::augment_dim`).

pub use score_core::Conditioning;
