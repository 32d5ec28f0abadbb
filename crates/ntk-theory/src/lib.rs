//! # ntk-theory: score estimation as kernel regression (in progress, issue 4)
//!
//! Y. Han, M. Razaviyayn & R. Xu, *Neural Network-Based Score Estimation in Diffusion
//! Models: Optimization and Generalization* (ICLR 2024, arXiv 2401.15604); specification
//! in `shared/papers/ntk-theory.md`. Everything is float64; linear algebra is faer's.
//!
//! Implemented and tested:
//! - [`kernels`]: the analytic NTK of the two-layer ReLU network κ(z, z') =
//!   zᵀz'·(π − arccos u)/(2π) (first layer trained) and with both layers trained, the
//!   arc-cosine kernels of order 0 and 1, symmetric Gram matrices built on all cores.
//! - [`network`]: the finite-width network f_W(z) = m^{−1/2} Σ_r a_r ReLU(w_rᵀz) with
//!   fixed a_r ∈ {±1}^d, symmetric initialisation (f₀ ≡ 0), its gradient and empirical
//!   NTK, and full-batch gradient descent on the squared loss.
//! - [`kernel_gd`]: kernel gradient descent in function space, as the closed-form
//!   spectral filter g_k(λ) = (1 − (1 − ηλ/N)^k)/λ and as explicit iteration; gradient
//!   flow; kernel ridge regression (Cholesky).
//!
//! Still to come (issue 4): early-stopping rules (Raskutti–Wainwright–Yu, hold-out),
//! the Ornstein–Uhlenbeck DSM set-up with exact targets, the fitted estimator as a
//! `score_core::Denoiser`, the `scorelab ntk` CLI, the four studies in `cargo xtask
//! experiment ntk`, and the benchmark.

pub mod error;
pub mod kernel_gd;
pub mod kernels;
pub mod network;

pub use error::{NtkError, Result};
