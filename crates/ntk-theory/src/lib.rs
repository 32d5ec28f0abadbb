//! # ntk-theory (planned: issue 4 — not implemented yet)
//!
//! Han, Razaviyayn & Xu, *Neural Network-Based Score Estimation in Diffusion Models:
//! Optimization and Generalization* (ICLR 2024, arXiv 2401.15604); specification in
//! `shared/papers/ntk-theory.md`.
//!
//! This crate will hold the analytic and empirical NTK of the two-layer ReLU network,
//! kernel gradient descent / gradient flow / ridge regression in float64, the
//! Raskutti–Wainwright–Yu and hold-out early-stopping rules, the Ornstein–Uhlenbeck DSM
//! set-up, and the fitted kernel score estimator as a `score_core::Denoiser`.

pub use score_core::Denoiser;
