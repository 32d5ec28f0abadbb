//! The Gaussian score model and the closed-form probability-flow solution
//! (Wang & Vastola 2024, Sec. 3; `shared/papers/gaussian-score.md`).
//!
//! With data mean μ and covariance Σ = U Λ Uᵀ (U is d × r, λ descending; for r < d the
//! complement of span U has zero data variance):
//! - denoiser D(x; σ) = μ + Σ_k λ_k/(λ_k + σ²)·⟨u_k, x − μ⟩·u_k, score s = (D − x)/σ²;
//! - PF-ODE solution from x_T at σ_T: x(σ) = μ + (σ/σ_T)·x_T^⊥ + Σ_k ψ_k(σ)·c_k·u_k with
//!   ψ_k = sqrt((σ² + λ_k)/(σ_T² + λ_k)), c_k = u_kᵀ(x_T − μ), x_T^⊥ = (I − UUᵀ)(x_T − μ);
//! - the denoiser along it, D(σ) = μ + Σ_k λ_k/sqrt((σ² + λ_k)(σ_T² + λ_k))·c_k·u_k;
//! - the VP form x_t = α_t μ + (σ_t/σ_T)x̄^⊥ + Σ ψ̄_k c̄_k u_k with
//!   ψ̄_k = sqrt((σ_t² + λ_k α_t²)/(σ_T² + λ_k α_T²)), c̄_k = u_kᵀ(x_T − α_T μ).
//!
//! All of it in float64 on the host; the `Denoiser` implementation applies the same
//! formula to burn tensors (in the input's dtype) for sampling.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Tensor;
use faer::{Mat, MatRef, Side};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use score_core::array::{contiguous, faer_view, from_rows, row_major};
use score_core::tensor::{from_f64_as, per_sample};
use score_core::{Conditioning, Denoiser};

use crate::error::{GaussError, Result, invalid};

/// A Gaussian N(μ, U diag(λ) Uᵀ) of rank r in dimension d, in float64.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianScore {
    /// The mean μ, length d.
    pub mean: Array1<f64>,
    /// The eigenvalues λ, descending, length r.
    pub eigvals: Array1<f64>,
    /// The eigenvectors as the columns of a d × r matrix: `eigvecs[[j, k]]` is
    /// coordinate j of u_k.
    pub eigvecs: Array2<f64>,
}

/// The number of rows of `data`, or an error when it has no rows or no columns.
pub(crate) fn rows(data: &ArrayView2<f64>) -> Result<usize> {
    let (n, d) = data.dim();
    if n == 0 || d == 0 {
        return Err(invalid(
            "data",
            format!("{n} rows of dimension {d}: need at least one row and one column"),
        ));
    }
    Ok(n)
}

/// Column means of `data` (rows summed in order).
pub fn column_mean(data: ArrayView2<f64>) -> Array1<f64> {
    let (n, d) = data.dim();
    let mut m = Array1::zeros(d);
    for r in data.rows() {
        m += &r;
    }
    m / n.max(1) as f64
}

/// The centred data matrix X − μ as a faer matrix (n × d).
fn centred(data: &ArrayView2<f64>, mean: &Array1<f64>) -> Mat<f64> {
    let (n, d) = data.dim();
    Mat::from_fn(n, d, |i, j| data[[i, j]] - mean[j])
}

/// The descending top-`r` eigenpairs of a symmetric matrix: λ and U (d × r).
fn top_eigen(m: &Mat<f64>, r: usize, what: &'static str) -> Result<(Array1<f64>, Array2<f64>)> {
    let d = m.nrows();
    let evd = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| GaussError::Eigen {
            what,
            detail: format!("{e:?}"),
        })?;
    let s = evd.S().column_vector();
    let u = evd.U();
    // ascending → descending
    let vals = Array1::from_shape_fn(r, |k| s[d - 1 - k].max(0.0));
    let vecs = Array2::from_shape_fn((d, r), |(j, k)| u[(j, d - 1 - k)]);
    Ok((vals, vecs))
}

/// Call `f` with `a` as a faer matrix: a view of its memory when in standard layout
/// (no copy), else a copy.
fn with_faer<T>(a: &Array2<f64>, f: impl FnOnce(MatRef<'_, f64>) -> T) -> T {
    match faer_view(a.view()) {
        Some(m) => f(m),
        None => f(Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]]).as_ref()),
    }
}

impl GaussianScore {
    /// Validate and build from parts: μ (d), λ (r ≤ d, finite, non-negative), U (d × r).
    pub fn new(mean: Array1<f64>, eigvals: Array1<f64>, eigvecs: Array2<f64>) -> Result<Self> {
        let (d, r) = (mean.len(), eigvals.len());
        if d == 0 || r > d || eigvecs.dim() != (d, r) {
            return Err(invalid(
                "eigvecs",
                format!("need d × r = {d} × {r}, got {:?}", eigvecs.dim()),
            ));
        }
        if eigvals.iter().any(|l| !(*l >= 0.0) || !l.is_finite()) {
            return Err(invalid("eigvals", "must be finite and non-negative"));
        }
        Ok(Self {
            mean,
            eigvals,
            eigvecs,
        })
    }

    /// Fit mean and covariance Σ = (X − μ)ᵀ(X − μ)/N of `data` (`[n, d]`, one point per
    /// row) and keep the top `rank` eigenpairs (all d when `None`), with faer's
    /// symmetric eigensolver.
    pub fn fit(data: ArrayView2<f64>, rank: Option<usize>) -> Result<Self> {
        let n = rows(&data)?;
        let d = data.ncols();
        let r = rank.unwrap_or(d).min(d);
        if r == 0 {
            return Err(invalid("rank", "must be at least 1"));
        }
        let mean = column_mean(data);
        let xc = centred(&data, &mean);
        let cov = (xc.transpose() * &xc) * faer::Scale(1.0 / n as f64);
        let (eigvals, eigvecs) = top_eigen(&cov, r, "data covariance")?;
        Self::new(mean, eigvals, eigvecs)
    }

    /// Fit the top-`r` eigenpairs with the randomized range finder of Halko, Martinsson
    /// & Tropp (2011, Alg. 4.4 with `power_iters` subspace iterations and `oversample`
    /// extra columns), never forming the d × d covariance: for large d (64·64·3 = 12 288).
    pub fn fit_randomized(
        data: ArrayView2<f64>,
        r: usize,
        oversample: usize,
        power_iters: usize,
        seed: u64,
    ) -> Result<Self> {
        let n = rows(&data)?;
        let d = data.ncols();
        if r == 0 || r > d {
            return Err(invalid("rank", format!("must lie in 1..={d}")));
        }
        let mean = column_mean(data);
        let xc = centred(&data, &mean);
        let l = (r + oversample).min(d);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let omega = Mat::from_fn(d, l, |_, _| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z
        });
        // Σ·M = Xcᵀ(Xc·M)/N without Σ.
        let apply = |m: &Mat<f64>| -> Mat<f64> {
            (xc.transpose() * (&xc * m)) * faer::Scale(1.0 / n as f64)
        };
        let mut q = apply(&omega).qr().compute_thin_Q();
        for _ in 0..power_iters {
            q = apply(&q).qr().compute_thin_Q();
        }
        let b = q.transpose() * apply(&q);
        let b = Mat::from_fn(l, l, |i, j| 0.5 * (b[(i, j)] + b[(j, i)]));
        let (vals, small) = top_eigen(&b, r, "projected covariance")?;
        let small = Mat::from_fn(l, r, |i, k| small[[i, k]]);
        let u = &q * &small;
        let vecs = Array2::from_shape_fn((d, r), |(j, k)| u[(j, k)]);
        Self::new(mean, vals, vecs)
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Rank r.
    pub fn rank(&self) -> usize {
        self.eigvals.len()
    }

    /// Coefficients c = Uᵀ(x − μ) of one point, and the squared norm of the residual
    /// (I − UUᵀ)(x − μ).
    pub fn project(&self, x: ArrayView1<f64>) -> (Array1<f64>, f64) {
        let (d, r) = (self.dim(), self.rank());
        let mut c = Array1::zeros(r);
        let mut norm2 = 0.0;
        for j in 0..d {
            let v = x[j] - self.mean[j];
            norm2 += v * v;
            for k in 0..r {
                c[k] += self.eigvecs[[j, k]] * v;
            }
        }
        let perp = (norm2 - c.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        (c, perp)
    }

    /// [`Self::project`] of every row of `x` at once (one matrix product): the
    /// coefficients `[b, r]` and the residual norms `[b]`.
    pub fn project_rows(&self, x: ArrayView2<f64>) -> (Array2<f64>, Array1<f64>) {
        let (d, r) = (self.dim(), self.rank());
        let b = x.nrows();
        let xc = Mat::from_fn(b, d, |i, j| x[[i, j]] - self.mean[j]);
        let c = with_faer(&self.eigvecs, |u| &xc * u);
        let coeffs = Array2::from_shape_fn((b, r), |(i, k)| c[(i, k)]);
        let perps = Array1::from_shape_fn(b, |i| {
            let norm2: f64 = (0..d).map(|j| xc[(i, j)].powi(2)).sum();
            let cn: f64 = (0..r).map(|k| c[(i, k)].powi(2)).sum();
            (norm2 - cn).max(0.0)
        });
        (coeffs, perps)
    }

    /// μ + U·(f ⊙ c) + g·(x − μ − U c) for each row, with c = Uᵀ(x − μ): the shape
    /// shared by every formula, as two matrix products (faer).
    fn combine(
        &self,
        x: &ArrayView2<f64>,
        f: impl Fn(usize) -> f64,
        g: f64,
        base: &Array1<f64>,
    ) -> Array2<f64> {
        let (d, r) = (self.dim(), self.rank());
        let b = x.nrows();
        let xc = Mat::from_fn(b, d, |i, j| x[[i, j]] - self.mean[j]);
        let fk: Vec<f64> = (0..r).map(&f).collect();
        // base + U(f ⊙ c) + g(xc − U c) = base + g·xc + U((f − g) ⊙ c)
        let proj = with_faer(&self.eigvecs, |u| {
            let c = &xc * u; // b × r
            let fc = Mat::from_fn(b, r, |i, k| (fk[k] - g) * c[(i, k)]);
            &fc * u.transpose() // b × d
        });
        Array2::from_shape_fn((b, d), |(i, j)| base[j] + g * xc[(i, j)] + proj[(i, j)])
    }

    /// The denoiser D(x; σ) for the rows of `x`.
    pub fn denoise_f64(&self, x: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
        let s2 = sigma * sigma;
        self.combine(
            &x,
            |k| self.eigvals[k] / (self.eigvals[k] + s2),
            0.0,
            &self.mean,
        )
    }

    /// The score s(x; σ) = (D − x)/σ² = −(Σ + σ²I)⁻¹(x − μ).
    pub fn score_f64(&self, x: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
        (self.denoise_f64(x, sigma) - x) / (sigma * sigma)
    }

    /// The closed-form PF-ODE solution x(σ) from the rows of x_T at σ_T (EDM form).
    pub fn pf_solution(&self, x_t: ArrayView2<f64>, sigma_t: f64, sigma: f64) -> Array2<f64> {
        let psi = |k: usize| {
            ((sigma * sigma + self.eigvals[k]) / (sigma_t * sigma_t + self.eigvals[k])).sqrt()
        };
        self.combine(&x_t, psi, sigma / sigma_t, &self.mean)
    }

    /// The denoiser along the closed-form trajectory started at (x_T, σ_T).
    pub fn denoiser_along(&self, x_t: ArrayView2<f64>, sigma_t: f64, sigma: f64) -> Array2<f64> {
        let f = |k: usize| {
            let l = self.eigvals[k];
            l / ((sigma * sigma + l) * (sigma_t * sigma_t + l)).sqrt()
        };
        self.combine(&x_t, f, 0.0, &self.mean)
    }

    /// The closed-form solution in VP form: x_t = α_t μ + (σ_t/σ_T)·x̄^⊥ + Σ ψ̄_k c̄_k u_k,
    /// from the rows of x_T at (α_T, σ_T) to (α_t, σ_t), with c̄ = Uᵀ(x_T − α_T μ).
    pub fn pf_solution_vp(
        &self,
        x_t: ArrayView2<f64>,
        alpha_big_t: f64,
        sigma_big_t: f64,
        alpha: f64,
        sigma: f64,
    ) -> Array2<f64> {
        // Shift so that the shared `combine` (which centres at μ) centres at α_T μ.
        let shifted = Array2::from_shape_fn(x_t.dim(), |(i, j)| {
            x_t[[i, j]] - alpha_big_t * self.mean[j] + self.mean[j]
        });
        let psi = |k: usize| {
            let l = self.eigvals[k];
            ((sigma * sigma + l * alpha * alpha)
                / (sigma_big_t * sigma_big_t + l * alpha_big_t * alpha_big_t))
                .sqrt()
        };
        let base = &self.mean * alpha;
        self.combine(&shifted.view(), psi, sigma / sigma_big_t, &base)
    }

    /// E‖D(x₀ + σn; σ) − x₀‖² = Σ_k λ_k σ²/(λ_k + σ²): the optimal linear denoiser's MSE.
    pub fn expected_mse(&self, sigma: f64) -> f64 {
        let s2 = sigma * sigma;
        self.eigvals.iter().map(|l| l * s2 / (l + s2)).sum()
    }

    /// The model's tensors for a safetensors file, named `<prefix>mean`, `<prefix>eigvals`
    /// and `<prefix>eigvecs`, each with its shape and row-major values.
    pub(crate) fn tensors(&self, prefix: &str) -> Vec<(String, Vec<usize>, Vec<f64>)> {
        vec![
            (
                format!("{prefix}mean"),
                vec![self.dim()],
                self.mean.to_vec(),
            ),
            (
                format!("{prefix}eigvals"),
                vec![self.rank()],
                self.eigvals.to_vec(),
            ),
            (
                format!("{prefix}eigvecs"),
                vec![self.dim(), self.rank()],
                row_major(self.eigvecs.view()).into_owned(),
            ),
        ]
    }

    /// The model from the tensors [`Self::tensors`] named, read by `get`.
    pub(crate) fn from_tensors(
        prefix: &str,
        get: impl Fn(&str) -> Result<Vec<f64>>,
    ) -> Result<Self> {
        let mean = Array1::from_vec(get(&format!("{prefix}mean"))?);
        let eigvals = Array1::from_vec(get(&format!("{prefix}eigvals"))?);
        let (d, r) = (mean.len(), eigvals.len());
        let eigvecs = from_rows(get(&format!("{prefix}eigvecs"))?, d, r, "eigvecs")
            .map_err(|e| invalid("eigvecs", e.to_string()))?;
        Self::new(mean, eigvals, eigvecs)
    }

    /// Save as safetensors (float64 `mean`, `eigvals`, `eigvecs`).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors(path, "gaussian", &self.tensors(""))
    }

    /// Load a model written by [`GaussianScore::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (kind, t) = load_tensors(path)?;
        let bad = |detail: String| GaussError::Model {
            path: path.into(),
            detail,
        };
        if kind != "gaussian" {
            return Err(bad(format!("kind: expected 'gaussian', found '{kind}'")));
        }
        let get = |k: &str| {
            t.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("tensor '{k}' is missing")))
        };
        Self::from_tensors("", get).map_err(|e| bad(e.to_string()))
    }

    /// Apply D(x; σ) = μ + U diag(λ/(λ + σ²)) Uᵀ(x − μ) to a batch tensor `[B, d]`.
    pub fn denoise_tensor(&self, x: Tensor<2>, sigma: Tensor<1>) -> Tensor<2> {
        let (d, r) = (self.dim(), self.rank());
        let (device, dtype) = (x.device(), x.dtype());
        let mu = from_f64_as(&contiguous(self.mean.view()), [1, d], dtype, &device);
        let u = from_f64_as(&row_major(self.eigvecs.view()), [d, r], dtype, &device);
        let lam = from_f64_as(&contiguous(self.eigvals.view()), [1, r], dtype, &device);
        let s2 = per_sample::<2>(sigma.powi_scalar(2)).cast(dtype);
        let shrink = lam.clone() / (lam + s2);
        let c = (x - mu.clone()).matmul(u.clone()) * shrink;
        mu + c.matmul(u.transpose())
    }
}

impl<const D: usize> Denoiser<D> for GaussianScore {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, _cond: Option<&Conditioning>) -> Tensor<D> {
        let shape = x.shape();
        let b = x.dims()[0];
        let flat: Tensor<2> = x.reshape([b as i64, -1]);
        self.denoise_tensor(flat, sigma).reshape(shape)
    }
}

pub(crate) fn save_tensors(
    path: &Path,
    kind: &str,
    items: &[(String, Vec<usize>, Vec<f64>)],
) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = items
        .iter()
        .map(|(n, s, v)| {
            (
                n.to_string(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F64, s.clone(), b)
                    .map_err(|e| invalid("tensor", e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> =
        [("scorelab.gaussian-score".to_string(), kind.to_string())].into();
    let out =
        safetensors::serialize(views, Some(meta)).map_err(|e| invalid("model", e.to_string()))?;
    score_core::fs::write_atomic(path, &out)?;
    Ok(())
}

pub(crate) fn load_tensors(path: &Path) -> Result<(String, HashMap<String, Vec<f64>>)> {
    let bytes = score_core::fs::read_file(path)?;
    let bad = |d: String| GaussError::Model {
        path: path.into(),
        detail: d,
    };
    let (_, md) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let kind = md
        .metadata()
        .as_ref()
        .and_then(|m| m.get("scorelab.gaussian-score"))
        .cloned()
        .ok_or_else(|| {
            bad("metadata: no 'scorelab.gaussian-score' entry (not a gaussian-score model)".into())
        })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = HashMap::new();
    for name in st.names() {
        let v = st.tensor(name).map_err(|e| bad(e.to_string()))?;
        if v.dtype() != Dtype::F64 {
            return Err(bad(format!(
                "tensor '{name}': expected F64, found {:?}",
                v.dtype()
            )));
        }
        out.insert(
            name.to_string(),
            v.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                .collect(),
        );
    }
    Ok((kind, out))
}
