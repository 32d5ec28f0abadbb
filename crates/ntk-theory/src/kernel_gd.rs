//! Kernel estimators in function space (`ntk-theory.md`): with Gram matrix H on the N
//! training inputs and targets Y (N × d), the prediction at z is κ(z, Z)·α with
//! - gradient descent, k steps of size η from 0: α_k = V diag(g_k(λ)) Vᵀ Y with the
//!   spectral filter g_k(λ) = (1 − (1 − ηλ/N)^k)/λ (limit kη/N at λ = 0); equivalently
//!   α_{k+1} = α_k + (η/N)(Y − H α_k), which [`alpha_gd_explicit`] iterates;
//! - gradient flow to time τ: g_τ(λ) = (1 − e^{−τλ/N})/λ;
//! - kernel ridge regression: α = (H + Nγ I)⁻¹ Y (Cholesky).

use faer::{Mat, Side};
use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{NtkError, Result, invalid};

/// (n, d) of a Gram matrix H (n × n) and targets Y (n × d), or an error.
fn check(h: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<(usize, usize)> {
    let (n, d) = y.dim();
    if h.dim() != (n, n) || d == 0 {
        return Err(invalid(
            "gram/targets",
            format!(
                "H is {:?} and Y {:?}: need n × n and n × d, d ≥ 1",
                h.dim(),
                y.dim()
            ),
        ));
    }
    Ok((n, d))
}

/// A faer matrix of an array view.
fn mat(a: &ArrayView2<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

/// An array of a faer matrix.
fn array(m: &Mat<f64>) -> Array2<f64> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)])
}

/// The eigendecomposition of a Gram matrix, with Vᵀ Y kept, for any spectral filter.
#[derive(Debug, Clone)]
pub struct Spectral {
    /// Eigenvalues of H (ascending, clipped at 0).
    pub eigvals: Array1<f64>,
    vecs: Mat<f64>,
    vty: Mat<f64>,
    n: usize,
    d: usize,
}

impl Spectral {
    /// Decompose H (n × n) and project Y (n × d).
    pub fn new(h: ArrayView2<f64>, y: ArrayView2<f64>) -> Result<Self> {
        let (n, d) = check(&h, &y)?;
        let hm = mat(&h);
        let evd = hm
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| NtkError::LinAlg {
                what: "eigendecomposition of the Gram matrix",
                detail: format!("{e:?}"),
            })?;
        let s = evd.S().column_vector();
        let eigvals = (0..n).map(|i| s[i].max(0.0)).collect();
        let vecs = evd.U().to_owned();
        let ym = mat(&y);
        let vty = vecs.transpose() * &ym;
        Ok(Self {
            eigvals,
            vecs,
            vty,
            n,
            d,
        })
    }

    /// The same decomposition with other labels Y' (n × d): no second factorisation.
    pub fn with_labels(&self, y: ArrayView2<f64>) -> Result<Self> {
        if y.dim() != (self.n, self.d) {
            return Err(crate::error::invalid(
                "labels",
                format!("{:?} for {} × {}", y.dim(), self.n, self.d),
            ));
        }
        let ym = mat(&y);
        Ok(Self {
            vty: self.vecs.transpose() * &ym,
            ..self.clone()
        })
    }

    /// Kernel ridge regression (H + NγI)⁻¹Y through the decomposition.
    pub fn alpha_ridge(&self, gamma: f64) -> Array2<f64> {
        let ng = self.n as f64 * gamma;
        self.alpha(|l| 1.0 / (l + ng))
    }

    /// α = V diag(g(λ)) Vᵀ Y for a filter g, n × d.
    pub fn alpha(&self, g: impl Fn(f64) -> f64) -> Array2<f64> {
        let scaled = Mat::from_fn(self.n, self.d, |i, k| g(self.eigvals[i]) * self.vty[(i, k)]);
        array(&(&self.vecs * &scaled))
    }

    /// Gradient descent for k steps of size η (closed form).
    pub fn alpha_gd(&self, eta: f64, k: u32) -> Array2<f64> {
        let n = self.n as f64;
        self.alpha(|l| {
            let x = eta * l / n;
            if x < 1e-12 {
                k as f64 * eta / n
            } else {
                (1.0 - (1.0 - x).powi(k as i32)) / l
            }
        })
    }

    /// Gradient flow to time τ.
    pub fn alpha_flow(&self, tau: f64) -> Array2<f64> {
        let n = self.n as f64;
        self.alpha(|l| {
            let x = tau * l / n;
            if x < 1e-12 {
                tau / n
            } else {
                -(-x).exp_m1() / l
            }
        })
    }

    /// The fitted values at the training inputs, H α, for a given α (n × d).
    pub fn fitted(&self, alpha: ArrayView2<f64>) -> Array2<f64> {
        let am = mat(&alpha);
        let vta = self.vecs.transpose() * &am; // once, not per element
        let lam = Mat::from_fn(self.n, self.d, |i, k| self.eigvals[i] * vta[(i, k)]);
        array(&(&self.vecs * &lam))
    }
}

/// Gradient descent by explicit iteration: α_{k+1} = α_k + (η/N)(Y − H α_k), α_0 = 0.
pub fn alpha_gd_explicit(
    h: ArrayView2<f64>,
    y: ArrayView2<f64>,
    eta: f64,
    k: usize,
) -> Result<Array2<f64>> {
    let (n, d) = check(&h, &y)?;
    let hm = mat(&h);
    let ym = mat(&y);
    let mut a = Mat::<f64>::zeros(n, d);
    let step = eta / n as f64;
    for _ in 0..k {
        let r = &ym - &hm * &a;
        a += r * faer::Scale(step);
    }
    Ok(array(&a))
}

/// Kernel ridge regression α = (H + Nγ I)⁻¹ Y by Cholesky.
pub fn alpha_krr(h: ArrayView2<f64>, y: ArrayView2<f64>, gamma: f64) -> Result<Array2<f64>> {
    let (n, _) = check(&h, &y)?;
    let reg = n as f64 * gamma;
    let hm = Mat::from_fn(n, n, |i, j| h[[i, j]] + if i == j { reg } else { 0.0 });
    let llt = hm.llt(Side::Lower).map_err(|e| NtkError::LinAlg {
        what: "Cholesky of H + Nγ I",
        detail: format!("{e:?} (increase γ)"),
    })?;
    let a = faer::linalg::solvers::Solve::solve(&llt, &mat(&y));
    Ok(array(&a))
}

/// Predictions κ(z_new, Z)·α: `cross` is the n_new × n cross-Gram matrix, α n × d.
/// Summed in the order of the training points, whatever the thread count.
pub fn predict(cross: ArrayView2<f64>, alpha: ArrayView2<f64>) -> Array2<f64> {
    let mut out = Array2::zeros((cross.nrows(), alpha.ncols()));
    for (mut row, c) in out.rows_mut().into_iter().zip(cross.rows()) {
        for (&cj, aj) in c.iter().zip(alpha.rows()) {
            row.scaled_add(cj, &aj);
        }
    }
    out
}
