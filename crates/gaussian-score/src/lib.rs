//! # gaussian-score (planned: issue 3 — not implemented yet)
//!
//! Wang & Vastola, *The Unreasonable Effectiveness of Gaussian Score Approximation for
//! Diffusion Models and its Applications* (TMLR 2024, arXiv 2412.09726); specification in
//! `shared/papers/gaussian-score.md`.
//!
//! This crate will hold, as implementations of `score_core::Denoiser`:
//! - the Gaussian score (full rank and top-r), the Gaussian mixture (k-means plus
//!   per-cluster covariance) and the delta mixture (the training set's exact score,
//!   batched and in log space);
//! - float64 fitting with a symmetric eigensolver (faer) and a randomized top-r solver;
//! - the closed-form probability-flow solution x(σ) = μ + (σ/σ_T)x_T^⊥ + Σ ψ_k(σ)c_k u_k
//!   (EDM and VP forms) and analytical teleportation for every score-core sampler;
//! - the explained-variance analysis of trained networks.
//!
//! Until then, score-core's `data::mixture::GaussianMixture` offers diagonal Gaussians
//! and mixtures with exact denoisers.

pub use score_core::Denoiser;
