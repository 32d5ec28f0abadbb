//! Kernel estimators in function space (`ntk-theory.md`): with Gram matrix H on the N
//! training inputs and targets Y (N × d), the prediction at z is κ(z, Z)·α with
//! - gradient descent, k steps of size η from 0: α_k = V diag(g_k(λ)) Vᵀ Y with the
//!   spectral filter g_k(λ) = (1 − (1 − ηλ/N)^k)/λ (limit kη/N at λ = 0); equivalently
//!   α_{k+1} = α_k + (η/N)(Y − H α_k), which [`alpha_gd_explicit`] iterates;
//! - gradient flow to time τ: g_τ(λ) = (1 − e^{−τλ/N})/λ;
//! - kernel ridge regression: α = (H + Nγ I)⁻¹ Y (Cholesky).

use faer::{Mat, Side};

use crate::error::{NtkError, Result, invalid};

fn check(h: &[f64], y: &[f64], d: usize) -> Result<usize> {
    let n = (h.len() as f64).sqrt() as usize;
    if n * n != h.len() || d == 0 || y.len() != n * d {
        return Err(invalid(
            "gram/targets",
            format!("H has {} entries and Y {} for d = {d}", h.len(), y.len()),
        ));
    }
    Ok(n)
}

/// The eigendecomposition of a Gram matrix, with Vᵀ Y kept, for any spectral filter.
#[derive(Debug, Clone)]
pub struct Spectral {
    /// Eigenvalues of H (ascending, clipped at 0).
    pub eigvals: Vec<f64>,
    vecs: Mat<f64>,
    vty: Mat<f64>,
    n: usize,
    d: usize,
}

impl Spectral {
    /// Decompose H (row-major n × n) and project Y (n × d).
    pub fn new(h: &[f64], y: &[f64], d: usize) -> Result<Self> {
        let n = check(h, y, d)?;
        let hm = Mat::from_fn(n, n, |i, j| h[i * n + j]);
        let evd = hm
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| NtkError::LinAlg {
                what: "eigendecomposition of the Gram matrix",
                detail: format!("{e:?}"),
            })?;
        let s = evd.S().column_vector();
        let eigvals = (0..n).map(|i| s[i].max(0.0)).collect();
        let vecs = evd.U().to_owned();
        let ym = Mat::from_fn(n, d, |i, k| y[i * d + k]);
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
    pub fn with_labels(&self, y: &[f64]) -> Result<Self> {
        if y.len() != self.n * self.d {
            return Err(crate::error::invalid(
                "labels",
                format!("{} values for {} × {}", y.len(), self.n, self.d),
            ));
        }
        let ym = Mat::from_fn(self.n, self.d, |i, k| y[i * self.d + k]);
        Ok(Self {
            vty: self.vecs.transpose() * &ym,
            ..self.clone()
        })
    }

    /// Kernel ridge regression (H + NγI)⁻¹Y through the decomposition.
    pub fn alpha_ridge(&self, gamma: f64) -> Vec<f64> {
        let ng = self.n as f64 * gamma;
        self.alpha(|l| 1.0 / (l + ng))
    }

    /// α = V diag(g(λ)) Vᵀ Y for a filter g, row-major n × d.
    pub fn alpha(&self, g: impl Fn(f64) -> f64) -> Vec<f64> {
        let scaled = Mat::from_fn(self.n, self.d, |i, k| g(self.eigvals[i]) * self.vty[(i, k)]);
        let a = &self.vecs * &scaled;
        (0..self.n * self.d)
            .map(|idx| a[(idx / self.d, idx % self.d)])
            .collect()
    }

    /// Gradient descent for k steps of size η (closed form).
    pub fn alpha_gd(&self, eta: f64, k: u32) -> Vec<f64> {
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
    pub fn alpha_flow(&self, tau: f64) -> Vec<f64> {
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

    /// The fitted values at the training inputs, H α, for a given α (row-major n × d).
    pub fn fitted(&self, alpha: &[f64]) -> Vec<f64> {
        let am = Mat::from_fn(self.n, self.d, |i, k| alpha[i * self.d + k]);
        let vta = self.vecs.transpose() * &am; // once, not per element
        let lam = Mat::from_fn(self.n, self.d, |i, k| self.eigvals[i] * vta[(i, k)]);
        let f = &self.vecs * &lam;
        (0..self.n * self.d)
            .map(|idx| f[(idx / self.d, idx % self.d)])
            .collect()
    }
}

/// Gradient descent by explicit iteration: α_{k+1} = α_k + (η/N)(Y − H α_k), α_0 = 0.
pub fn alpha_gd_explicit(h: &[f64], y: &[f64], d: usize, eta: f64, k: usize) -> Result<Vec<f64>> {
    let n = check(h, y, d)?;
    let hm = Mat::from_fn(n, n, |i, j| h[i * n + j]);
    let ym = Mat::from_fn(n, d, |i, c| y[i * d + c]);
    let mut a = Mat::<f64>::zeros(n, d);
    let step = eta / n as f64;
    for _ in 0..k {
        let r = &ym - &hm * &a;
        a += r * faer::Scale(step);
    }
    Ok((0..n * d).map(|idx| a[(idx / d, idx % d)]).collect())
}

/// Kernel ridge regression α = (H + Nγ I)⁻¹ Y by Cholesky.
pub fn alpha_krr(h: &[f64], y: &[f64], d: usize, gamma: f64) -> Result<Vec<f64>> {
    let n = check(h, y, d)?;
    let reg = n as f64 * gamma;
    let hm = Mat::from_fn(n, n, |i, j| h[i * n + j] + if i == j { reg } else { 0.0 });
    let llt = hm.llt(Side::Lower).map_err(|e| NtkError::LinAlg {
        what: "Cholesky of H + Nγ I",
        detail: format!("{e:?} (increase γ)"),
    })?;
    let ym = Mat::from_fn(n, d, |i, c| y[i * d + c]);
    let a = faer::linalg::solvers::Solve::solve(&llt, &ym);
    Ok((0..n * d).map(|idx| a[(idx / d, idx % d)]).collect())
}

/// Predictions κ(z_new, Z)·α: `cross` is the row-major n_new × n cross-Gram matrix.
pub fn predict(cross: &[f64], alpha: &[f64], n: usize, d: usize) -> Vec<f64> {
    let m = cross.len() / n;
    let mut out = vec![0.0; m * d];
    for i in 0..m {
        for j in 0..n {
            let c = cross[i * n + j];
            for k in 0..d {
                out[i * d + k] += c * alpha[j * d + k];
            }
        }
    }
    out
}
