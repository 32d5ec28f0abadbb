//! # ntk-theory: score estimation as kernel regression
//!
//! Y. Han, M. Razaviyayn & R. Xu, *Neural Network-Based Score Estimation in Diffusion
//! Models: Optimization and Generalization* (ICLR 2024, arXiv 2401.15604); specification
//! in `shared/papers/ntk-theory.md`. Everything is float64; linear algebra is faer's.
//!
//! - [`kernels`]: the analytic NTK of the two-layer ReLU network κ(z, z') =
//!   zᵀz'·(π − arccos u)/(2π) (first layer trained) and with both layers trained, the
//!   arc-cosine kernels of order 0 and 1, symmetric Gram matrices built on all cores.
//! - [`network`]: the finite-width network f_W(z) = m^{−1/2} Σ_r a_r ReLU(w_rᵀz) with
//!   fixed a_r ∈ {±1}^d, symmetric initialisation (f₀ ≡ 0), its gradient and empirical
//!   NTK, and full-batch gradient descent on the squared loss.
//! - [`kernel_gd`]: kernel gradient descent as the spectral filter
//!   g_k(λ) = (1 − (1 − ηλ/N)^k)/λ and as explicit iteration; gradient flow; kernel ridge
//!   regression (Cholesky).
//! - [`stopping`]: the Raskutti–Wainwright–Yu rule and a hold-out rule.
//! - [`dsm`]: the Ornstein–Uhlenbeck set-up (α_t = e^{−t}, h_t = 1 − e^{−2t}), DSM
//!   triples z = (x_t, t, 1) → X₀, exact f* and scores for a Gaussian and a two-component
//!   mixture.
//! - [`estimator`]: the fitted kernel estimator, stopped by a number of steps, RWY,
//!   hold-out, a sampling-aware hold-out, or ridge; saved as safetensors; a `score_core::Denoiser` in EDM form, so
//!   score-core's samplers sample from it.
//! - [`decomposition`]: the paper's error decomposition (coupling, label mismatch, early
//!   stopping, approximation) measured term by term.
//! - [`study`]: the spec's four studies, the sampling check and the stopping sweep.
//!
//! Inputs, labels, Gram matrices and coefficients are `ndarray` arrays (re-exported as
//! [`ndarray`](crate::ndarray)): views in (one point per row), owned arrays out.
//!
//! ```
//! use ntk_theory::kernel_gd::{Spectral, predict};
//! use ntk_theory::kernels::Kernel;
//! use ntk_theory::ndarray::array;
//!
//! // Kernel GD on three inputs z = (x, t, 1) with one label each, then predictions.
//! let z = array![[0.5, 0.1, 1.0], [-1.0, 0.2, 1.0], [2.0, 0.3, 1.0]];
//! let y = array![[0.4], [-0.9], [1.8]];
//! let h = Kernel::Ntk1.gram(z.view()).unwrap();
//! let alpha = Spectral::new(h.view(), y.view()).unwrap().alpha_gd(1.0, 100);
//! let f = predict(h.view(), alpha.view());
//! assert_eq!(f.dim(), (3, 1));
//! ```

pub mod decomposition;
pub mod dsm;
pub mod error;
pub mod estimator;
pub mod kernel_gd;
pub mod kernels;
pub mod network;
pub mod stopping;
pub mod study;

pub use error::{NtkError, Result};
pub use ndarray;
