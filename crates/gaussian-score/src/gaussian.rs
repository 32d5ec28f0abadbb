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
use faer::{Mat, Side};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use score_core::tensor::{from_f64_as, per_sample};
use score_core::{Conditioning, Denoiser};

use crate::error::{GaussError, Result, invalid};

/// A Gaussian N(μ, U diag(λ) Uᵀ) of rank r in dimension d, in float64.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianScore {
    /// The mean μ, length d.
    pub mean: Vec<f64>,
    /// The eigenvalues λ, descending, length r.
    pub eigvals: Vec<f64>,
    /// The eigenvectors, row-major d × r: `eigvecs[j * r + k]` is coordinate j of u_k.
    pub eigvecs: Vec<f64>,
}

pub(crate) fn rows(data: &[f64], d: usize) -> Result<usize> {
    if d == 0 || data.is_empty() || !data.len().is_multiple_of(d) {
        return Err(invalid(
            "data",
            format!("{} values do not form rows of dimension {d}", data.len()),
        ));
    }
    Ok(data.len() / d)
}

/// Column means of row-major data.
pub fn column_mean(data: &[f64], d: usize) -> Vec<f64> {
    let n = data.len() / d;
    let mut m = vec![0.0; d];
    for r in data.chunks_exact(d) {
        m.iter_mut().zip(r).for_each(|(a, b)| *a += b);
    }
    m.iter_mut().for_each(|a| *a /= n as f64);
    m
}

/// The centred data matrix X − μ as a faer matrix (n × d).
fn centred(data: &[f64], d: usize, mean: &[f64]) -> Mat<f64> {
    let n = data.len() / d;
    Mat::from_fn(n, d, |i, j| data[i * d + j] - mean[j])
}

/// The descending top-`r` eigenpairs of a symmetric matrix.
fn top_eigen(m: &Mat<f64>, r: usize, what: &'static str) -> Result<(Vec<f64>, Vec<f64>)> {
    let d = m.nrows();
    let evd = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| GaussError::Eigen {
            what,
            detail: format!("{e:?}"),
        })?;
    let s = evd.S().column_vector();
    let u = evd.U();
    let mut vals = Vec::with_capacity(r);
    let mut vecs = vec![0.0; d * r];
    for k in 0..r {
        let src = d - 1 - k; // ascending → descending
        vals.push(s[src].max(0.0));
        for j in 0..d {
            vecs[j * r + k] = u[(j, src)];
        }
    }
    Ok((vals, vecs))
}

impl GaussianScore {
    /// Validate and build from parts.
    pub fn new(mean: Vec<f64>, eigvals: Vec<f64>, eigvecs: Vec<f64>) -> Result<Self> {
        let (d, r) = (mean.len(), eigvals.len());
        if d == 0 || r > d || eigvecs.len() != d * r {
            return Err(invalid(
                "eigvecs",
                format!("need d × r = {d} × {r} values, got {}", eigvecs.len()),
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

    /// Fit mean and covariance Σ = (X − μ)ᵀ(X − μ)/N of row-major data `[n, d]` and keep
    /// the top `rank` eigenpairs (all d when `None`), with faer's symmetric eigensolver.
    pub fn fit(data: &[f64], d: usize, rank: Option<usize>) -> Result<Self> {
        let n = rows(data, d)?;
        let r = rank.unwrap_or(d).min(d);
        if r == 0 {
            return Err(invalid("rank", "must be at least 1"));
        }
        let mean = column_mean(data, d);
        let xc = centred(data, d, &mean);
        let cov = (xc.transpose() * &xc) * faer::Scale(1.0 / n as f64);
        let (eigvals, eigvecs) = top_eigen(&cov, r, "data covariance")?;
        Self::new(mean, eigvals, eigvecs)
    }

    /// Fit the top-`r` eigenpairs with the randomized range finder of Halko, Martinsson
    /// & Tropp (2011, Alg. 4.4 with `power_iters` subspace iterations and `oversample`
    /// extra columns), never forming the d × d covariance: for large d (64·64·3 = 12 288).
    pub fn fit_randomized(
        data: &[f64],
        d: usize,
        r: usize,
        oversample: usize,
        power_iters: usize,
        seed: u64,
    ) -> Result<Self> {
        let n = rows(data, d)?;
        if r == 0 || r > d {
            return Err(invalid("rank", format!("must lie in 1..={d}")));
        }
        let mean = column_mean(data, d);
        let xc = centred(data, d, &mean);
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
        let small = Mat::from_fn(l, r, |i, k| small[i * r + k]);
        let u = &q * &small;
        let vecs = (0..d * r).map(|idx| u[(idx / r, idx % r)]).collect();
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
    pub fn project(&self, x: &[f64]) -> (Vec<f64>, f64) {
        let (d, r) = (self.dim(), self.rank());
        let mut c = vec![0.0; r];
        let mut norm2 = 0.0;
        for j in 0..d {
            let v = x[j] - self.mean[j];
            norm2 += v * v;
            let row = &self.eigvecs[j * r..(j + 1) * r];
            c.iter_mut().zip(row).for_each(|(ck, u)| *ck += u * v);
        }
        let perp = (norm2 - c.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        (c, perp)
    }

    /// [`Self::project`] of every row of `x` at once (one matrix product): the
    /// coefficients `[b, r]` row-major and the residual norms `[b]`.
    pub fn project_rows(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (d, r) = (self.dim(), self.rank());
        let b = x.len() / d;
        let xc = Mat::from_fn(b, d, |i, j| x[i * d + j] - self.mean[j]);
        let u = Mat::from_fn(d, r, |j, k| self.eigvecs[j * r + k]);
        let c = &xc * &u;
        let coeffs: Vec<f64> = (0..b)
            .flat_map(|i| (0..r).map(move |k| (i, k)))
            .map(|(i, k)| c[(i, k)])
            .collect();
        let perps = (0..b)
            .map(|i| {
                let norm2: f64 = (0..d).map(|j| xc[(i, j)].powi(2)).sum();
                let cn: f64 = (0..r).map(|k| c[(i, k)].powi(2)).sum();
                (norm2 - cn).max(0.0)
            })
            .collect();
        (coeffs, perps)
    }

    /// μ + U·(f ⊙ c) + g·(x − μ − U c) for each row, with c = Uᵀ(x − μ): the shape
    /// shared by every formula, as two matrix products (faer).
    fn combine(&self, x: &[f64], f: impl Fn(usize) -> f64, g: f64, base: &[f64]) -> Vec<f64> {
        let (d, r) = (self.dim(), self.rank());
        let b = x.len() / d;
        let xc = Mat::from_fn(b, d, |i, j| x[i * d + j] - self.mean[j]);
        let u = Mat::from_fn(d, r, |j, k| self.eigvecs[j * r + k]);
        let c = &xc * &u; // b × r
        let fk: Vec<f64> = (0..r).map(&f).collect();
        let fc = Mat::from_fn(b, r, |i, k| (fk[k] - g) * c[(i, k)]);
        // base + U(f ⊙ c) + g(xc − U c) = base + g·xc + U((f − g) ⊙ c)
        let proj = &fc * u.transpose(); // b × d
        let mut out = Vec::with_capacity(b * d);
        for i in 0..b {
            for j in 0..d {
                out.push(base[j] + g * xc[(i, j)] + proj[(i, j)]);
            }
        }
        out
    }

    /// The denoiser D(x; σ) for row-major points.
    pub fn denoise_f64(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        let s2 = sigma * sigma;
        self.combine(
            x,
            |k| self.eigvals[k] / (self.eigvals[k] + s2),
            0.0,
            &self.mean,
        )
    }

    /// The score s(x; σ) = (D − x)/σ² = −(Σ + σ²I)⁻¹(x − μ).
    pub fn score_f64(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        score_core::tensor::score_from_denoised(&self.denoise_f64(x, sigma), x, sigma)
    }

    /// The closed-form PF-ODE solution x(σ) from x_T at σ_T (EDM form).
    pub fn pf_solution(&self, x_t: &[f64], sigma_t: f64, sigma: f64) -> Vec<f64> {
        let psi = |k: usize| {
            ((sigma * sigma + self.eigvals[k]) / (sigma_t * sigma_t + self.eigvals[k])).sqrt()
        };
        self.combine(x_t, psi, sigma / sigma_t, &self.mean)
    }

    /// The denoiser along the closed-form trajectory started at (x_T, σ_T).
    pub fn denoiser_along(&self, x_t: &[f64], sigma_t: f64, sigma: f64) -> Vec<f64> {
        let f = |k: usize| {
            let l = self.eigvals[k];
            l / ((sigma * sigma + l) * (sigma_t * sigma_t + l)).sqrt()
        };
        self.combine(x_t, f, 0.0, &self.mean)
    }

    /// The closed-form solution in VP form: x_t = α_t μ + (σ_t/σ_T)·x̄^⊥ + Σ ψ̄_k c̄_k u_k,
    /// from x_T at (α_T, σ_T) to (α_t, σ_t), with c̄ = Uᵀ(x_T − α_T μ).
    pub fn pf_solution_vp(
        &self,
        x_t: &[f64],
        alpha_big_t: f64,
        sigma_big_t: f64,
        alpha: f64,
        sigma: f64,
    ) -> Vec<f64> {
        let d = self.dim();
        // Shift so that the shared `combine` (which centres at μ) centres at α_T μ.
        let shifted: Vec<f64> = x_t
            .chunks_exact(d)
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, v)| v - alpha_big_t * self.mean[j] + self.mean[j])
                    .collect::<Vec<_>>()
            })
            .collect();
        let psi = |k: usize| {
            let l = self.eigvals[k];
            ((sigma * sigma + l * alpha * alpha)
                / (sigma_big_t * sigma_big_t + l * alpha_big_t * alpha_big_t))
                .sqrt()
        };
        let base: Vec<f64> = self.mean.iter().map(|m| alpha * m).collect();
        self.combine(&shifted, psi, sigma / sigma_big_t, &base)
    }

    /// E‖D(x₀ + σn; σ) − x₀‖² = Σ_k λ_k σ²/(λ_k + σ²): the optimal linear denoiser's MSE.
    pub fn expected_mse(&self, sigma: f64) -> f64 {
        let s2 = sigma * sigma;
        self.eigvals.iter().map(|l| l * s2 / (l + s2)).sum()
    }

    /// Save as safetensors (float64 `mean`, `eigvals`, `eigvecs`).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors(
            path,
            "gaussian",
            &[
                ("mean", vec![self.dim()], &self.mean),
                ("eigvals", vec![self.rank()], &self.eigvals),
                ("eigvecs", vec![self.dim(), self.rank()], &self.eigvecs),
            ],
        )
    }

    /// Load a model written by [`GaussianScore::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let (kind, t) = load_tensors(path)?;
        if kind != "gaussian" {
            return Err(GaussError::Model {
                path: path.into(),
                detail: format!("kind: expected 'gaussian', found '{kind}'"),
            });
        }
        let get = |k: &str| {
            t.get(k).cloned().ok_or_else(|| GaussError::Model {
                path: path.into(),
                detail: format!("tensor '{k}' is missing"),
            })
        };
        Self::new(get("mean")?, get("eigvals")?, get("eigvecs")?).map_err(|e| GaussError::Model {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// Apply D(x; σ) = μ + U diag(λ/(λ + σ²)) Uᵀ(x − μ) to a batch tensor `[B, d]`.
    pub fn denoise_tensor(&self, x: Tensor<2>, sigma: Tensor<1>) -> Tensor<2> {
        let (d, r) = (self.dim(), self.rank());
        let (device, dtype) = (x.device(), x.dtype());
        let mu = from_f64_as(&self.mean, [1, d], dtype, &device);
        let u = from_f64_as(&self.eigvecs, [d, r], dtype, &device);
        let lam = from_f64_as(&self.eigvals, [1, r], dtype, &device);
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
    items: &[(&str, Vec<usize>, &[f64])],
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
