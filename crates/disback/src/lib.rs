//! # disback (planned — not implemented yet)
//!
//! Zhang et al., *Distribution Backtracking Builds A Faster Convergence Trajectory for
//! One-step Diffusion Distillation* (DisBack, arXiv 2408.15991); specification in
//! `shared/papers/disback.md`.
//!
//! This crate will hold one-step distillation of a score-core teacher into a generator,
//! degradation recording (the teacher's fine-tuning path toward the generator's
//! distribution) and distribution backtracking (distilling along that path in reverse),
//! with the fake score as a `score_core::Denoiser`.

pub use score_core::Denoiser;
