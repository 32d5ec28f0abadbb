//! The fitted kernel estimator of f*(x, t) = E[X₀ | X_t = x], and its use as a
//! score-core `Denoiser` (EDM form).
//!
//! Fitting: H = κ(Z, Z) on the N training inputs, rescaled by its largest diagonal entry
//! so that sup κ ≤ 1 (RWY's assumption, and GD with η ≤ 1 is then stable); kernel GD
//! from 0 with step η, stopped by [`Stop`]. EDM form: for x_edm = x₀ + σn,
//! t = ½ ln(1 + σ²) and X_t = e^{−t}·x_edm, so D(x_edm; σ) = f(e^{−t}x_edm, t), with t
//! clamped to the fitted range [t₀, T].

use burn::tensor::Tensor;
use ndarray::{Array2, ArrayView2, Axis, Slice};
use score_core::array::{from_rows, on_rows, row_major, rows_of};
use score_core::tensor::host_denoise;
use score_core::{Conditioning, Denoiser};

use crate::dsm::Triples;
use crate::error::{Result, invalid};
use crate::kernel_gd::{Spectral, alpha_krr, predict};
use crate::kernels::Kernel;
use crate::stopping::rwy_stop;

/// How to stop (or regularise) the kernel regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// Exactly k GD steps.
    Steps(usize),
    /// Raskutti–Wainwright–Yu with noise level σ̂.
    Rwy {
        /// Label-noise standard deviation.
        sigma_hat: f64,
    },
    /// Hold out this fraction of the triples and pick the k with the smallest
    /// validation error against the labels (then refit on all).
    Holdout {
        /// Fraction held out.
        fraction: f64,
    },
    /// Kernel ridge regression with this γ (γ → 0: the interpolating estimator).
    Ridge(f64),
    /// Stopping aimed at sampling: hold out this fraction of the triples, fit the rest,
    /// and for each k on a coarse grid draw [`SAMPLING_CHECK`] samples from the fit
    /// (Heun, the same initial noise for every k) and measure their sliced W2 to the clean
    /// samples X₀ of all the triples (the data set itself); keep the k with the smallest
    /// distance, then refit on all. No oracle: the criterion uses the data only. Its
    /// reference includes the fitted triples' X₀ (a held-out fifth alone was too few
    /// points to tell the candidates apart), so it cannot see memorisation.
    Sampling {
        /// Fraction held out.
        fraction: f64,
    },
}

/// The samples drawn, Heun levels used, and grid points tried by [`Stop::Sampling`]:
/// (samples, levels, every how many points of [`k_grid`]).
pub const SAMPLING_CHECK: (usize, usize, usize) = (1024, 16, 4);

/// A fitted kernel estimator.
#[derive(Debug, Clone)]
pub struct KernelEstimator {
    /// The kernel.
    pub kernel: Kernel,
    /// Training inputs, N × p (p = d + 2).
    pub z: Array2<f64>,
    /// Coefficients, N × d.
    pub alpha: Array2<f64>,
    /// The rescaling applied to κ (1 / its largest diagonal entry).
    pub scale: f64,
    /// The fitted time range [t₀, T].
    pub t_range: (f64, f64),
    /// The number of GD steps used (0 for ridge).
    pub steps: usize,
    /// The largest step count the stopping rule examined: `steps` equal to it means the
    /// rule stopped at the end of its search, not where its criterion turned (0 for
    /// ridge and fixed steps; not saved, and a loaded model has 0).
    pub searched_to: usize,
}

/// The largest step count a grid search extends to ([`search_until_turn`]).
pub const K_LIMIT: usize = 1_000_000_000;

/// The k minimising `err` over [`k_grid`]`(k_max)` (every `every`-th point), and while
/// the best k is the largest searched, over the next decade (cap, 10·cap] of the grid
/// up to [`K_LIMIT`]: the criterion is followed until it turns instead of stopping at
/// `--k-max` unannounced (issue 27). Returns (k, its error, the largest k searched).
pub fn search_until_turn(
    k_max: usize,
    every: usize,
    mut err: impl FnMut(usize) -> Result<f64>,
) -> Result<(usize, f64, usize)> {
    let (mut cap, mut below) = (k_max.clamp(1, K_LIMIT), 0);
    let mut best = (0, f64::INFINITY);
    let mut last = 0;
    loop {
        let ks: Vec<usize> = k_grid(cap).into_iter().filter(|&k| k > below).collect();
        for k in ks.into_iter().step_by(every.max(1)) {
            let e = err(k)?;
            if e < best.1 {
                best = (k, e);
            }
            last = k;
        }
        if best.0 != last || cap >= K_LIMIT {
            return Ok((best.0, best.1, last));
        }
        (below, cap) = (cap, cap.saturating_mul(10).min(K_LIMIT));
    }
}

/// The geometric grid of GD step counts the stopping rules search: 1 … `k_max`.
pub fn k_grid(k_max: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = (0..=60)
        .map(|i| (k_max as f64).powf(i as f64 / 60.0).round() as usize)
        .collect();
    ks.dedup();
    ks
}

/// A held-out split of the rescaled Gram matrix: the last `n_val` triples validate.
struct Split {
    sp: Spectral,
    cross: Array2<f64>,
    n_tr: usize,
}

/// The first `n` rows of `a`.
fn head(a: &Array2<f64>, n: usize) -> ArrayView2<'_, f64> {
    a.slice_axis(Axis(0), Slice::from(..n))
}

impl Split {
    fn new(h: &Array2<f64>, triples: &Triples, fraction: f64) -> Result<Self> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(invalid("fraction", "must lie in (0, 1)"));
        }
        let n = triples.len();
        let n_val = ((n as f64) * fraction).round().max(1.0) as usize;
        let n_tr = n
            .checked_sub(n_val)
            .filter(|&v| v > 0)
            .ok_or_else(|| invalid("fraction", "leaves no training triple; use more data"))?;
        let h_tr = Array2::from_shape_fn((n_tr, n_tr), |(i, j)| h[[i, j]]);
        let cross = Array2::from_shape_fn((n - n_tr, n_tr), |(i, j)| h[[n_tr + i, j]]);
        let sp = Spectral::new(h_tr.view(), head(&triples.y, n_tr))?;
        Ok(Self { sp, cross, n_tr })
    }

    /// Squared validation error after k steps, summed over the held-out triples.
    fn error(&self, triples: &Triples, eta: f64, k: usize) -> f64 {
        let pred = predict(self.cross.view(), self.sp.alpha_gd(eta, k as u32).view());
        let held = triples.y.slice_axis(Axis(0), Slice::from(self.n_tr..));
        pred.iter()
            .zip(held.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum()
    }
}

impl KernelEstimator {
    /// Fit to `triples` over times [t₀, T].
    pub fn fit(
        triples: &Triples,
        kernel: Kernel,
        eta: f64,
        stop: Stop,
        k_max: usize,
        t_range: (f64, f64),
    ) -> Result<Self> {
        if triples.is_empty() {
            return Err(invalid("triples", "no training data"));
        }
        let d = triples.d();
        let mut h = kernel.gram(triples.z.view())?;
        let kmax = h.diag().fold(0.0, |a: f64, &b| a.max(b)).max(1e-300);
        let scale = 1.0 / kmax;
        h.iter_mut().for_each(|v| *v *= scale);
        let spectral = || Spectral::new(h.view(), triples.y.view());
        let (alpha, steps, searched_to) = match stop {
            Stop::Ridge(gamma) => (alpha_krr(h.view(), triples.y.view(), gamma)?, 0, 0),
            Stop::Steps(k) => (spectral()?.alpha_gd(eta, k as u32), k, 0),
            Stop::Rwy { sigma_hat } => {
                let sp = spectral()?;
                let k = rwy_stop(sp.eigvals.view(), 1.0, eta, sigma_hat, k_max)?;
                (sp.alpha_gd(eta, k as u32), k, k_max)
            }
            Stop::Holdout { fraction } => {
                let split = Split::new(&h, triples, fraction)?;
                let (k, _, to) = search_until_turn(k_max, 1, |k| Ok(split.error(triples, eta, k)))?;
                (spectral()?.alpha_gd(eta, k as u32), k, to)
            }
            Stop::Sampling { fraction } => {
                let split = Split::new(&h, triples, fraction)?;
                let part = |alpha, steps| Self {
                    kernel,
                    z: head(&triples.z, split.n_tr).to_owned(),
                    alpha,
                    scale,
                    t_range,
                    steps,
                    searched_to: 0,
                };
                let reference = row_major(triples.y.view());
                let (n_s, levels, every) = SAMPLING_CHECK;
                let (k, _, to) = search_until_turn(k_max, every, |k| {
                    let xs = part(split.sp.alpha_gd(eta, k as u32), k).sample(n_s, levels, 0)?;
                    score_core::metrics::sliced_w2(&row_major(xs.view()), &reference, d, 64, 0)
                        .map_err(|e| invalid("sampling", e.to_string()))
                })?;
                (spectral()?.alpha_gd(eta, k as u32), k, to)
            }
        };
        Ok(Self {
            kernel,
            z: triples.z.clone(),
            alpha,
            scale,
            t_range,
            steps,
            searched_to,
        })
    }

    /// Data dimension d.
    pub fn d(&self) -> usize {
        self.alpha.ncols()
    }

    /// f(z) for the inputs z = (x, t, 1) in the rows of `z` (`[m, d + 2]`): `[m, d]`.
    pub fn predict(&self, z: ArrayView2<f64>) -> Result<Array2<f64>> {
        let mut cross = self.kernel.cross_gram(z, self.z.view())?;
        cross.iter_mut().for_each(|v| *v *= self.scale);
        Ok(predict(cross.view(), self.alpha.view()))
    }

    /// Mean squared error per coordinate against the exact f* of test triples.
    pub fn mse(&self, test: &Triples) -> Result<f64> {
        let f = self.predict(test.z.view())?;
        Ok(f.iter()
            .zip(&test.f_star)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / f.len() as f64)
    }

    /// The EDM-form denoiser on the rows of `x` (`[B, d]`) at one σ.
    pub fn denoise_edm(&self, x: ArrayView2<f64>, sigma: f64) -> Result<Array2<f64>> {
        self.predict(edm_inputs(x, sigma, self.t_range).view())
    }

    /// Save as safetensors: float64 `z` and `alpha`, the rest as JSON metadata.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let meta = serde_json::json!({"kernel": format!("{:?}", self.kernel), "scale": self.scale, "d": self.d(), "t0": self.t_range.0, "t1": self.t_range.1, "steps": self.steps});
        write_model(
            path,
            &meta,
            &[("z", self.z.view()), ("alpha", self.alpha.view())],
        )
    }

    /// Load a model written by [`KernelEstimator::save`].
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let bad = |d: String| invalid("model", format!("{}: {d}", path.display()));
        // The read error names the file already.
        let bytes = score_core::fs::read_file(path).map_err(|e| invalid("model", e.to_string()))?;
        let (_, md) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta: serde_json::Value = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get("scorelab.ntk"))
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| {
                bad("metadata: no 'scorelab.ntk' entry (not an ntk-theory model)".into())
            })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let get = |k: &str| -> Result<Vec<f64>> {
            let v = st
                .tensor(k)
                .map_err(|_| bad(format!("tensor '{k}' is missing")))?;
            Ok(v.data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                .collect())
        };
        let field = |k: &str| {
            meta[k]
                .as_f64()
                .ok_or_else(|| bad(format!("metadata field '{k}' is missing")))
        };
        let kernel = match meta["kernel"].as_str() {
            Some("Ntk1") => Kernel::Ntk1,
            Some("Ntk2") => Kernel::Ntk2,
            Some("ArcCos0") => Kernel::ArcCos0,
            Some("ArcCos1") => Kernel::ArcCos1,
            other => return Err(bad(format!("metadata field 'kernel': {other:?}"))),
        };
        let d = field("d")? as usize;
        let (z, alpha) = (get("z")?, get("alpha")?);
        if d == 0 || alpha.len() % d != 0 || z.len() != alpha.len() / d * (d + 2) {
            return Err(bad("tensors 'z' and 'alpha' do not fit each other".into()));
        }
        let n = alpha.len() / d;
        let rows = |v, c, what| from_rows(v, n, c, what).map_err(|e| bad(e.to_string()));
        Ok(Self {
            kernel,
            z: rows(z, d + 2, "z")?,
            alpha: rows(alpha, d, "alpha")?,
            scale: field("scale")?,
            t_range: (field("t0")?, field("t1")?),
            steps: field("steps")? as usize,
            searched_to: 0,
        })
    }

    /// Draw `n` samples with score-core's Heun sampler on `levels` Karras levels (ρ = 7)
    /// over the fitted σ range, from the seeded initial noise N(0, σ_max² I): `[n, d]`.
    pub fn sample(&self, n: usize, levels: usize, seed: u64) -> Result<Array2<f64>> {
        let d = self.d();
        use burn::tensor::{DType, Device};
        use score_core::samplers::{HeunOptions, SampleContext, heun_sample};
        let fail = |e: score_core::ScoreError| invalid("sampling", e.to_string());
        let (smin, smax) = self.sigma_range();
        let sigmas = score_core::sigmas::karras_sigmas(levels, smin, smax, 7.0).map_err(fail)?;
        let mut rng = score_core::tensor::stream_rng(seed, 0x4e54, 0);
        let x: Vec<f64> = (0..n * d)
            .map(|_| {
                smax * rand_distr::Distribution::<f64>::sample(
                    &rand_distr::StandardNormal,
                    &mut rng,
                )
            })
            .collect();
        let device = Device::flex();
        let out = heun_sample(
            self,
            &sigmas,
            score_core::tensor::from_f64_as(&x, [n, d], DType::F64, &device),
            &HeunOptions::default(),
            &mut SampleContext::new(),
        )
        .map_err(fail)?;
        let xs = score_core::tensor::to_vec_f64(out.x).map_err(fail)?;
        Ok(rows_of(xs, d))
    }

    /// The EDM σ range the estimator was fitted on: (σ(t₀), σ(T)).
    pub fn sigma_range(&self) -> (f64, f64) {
        let s = |t: f64| (2.0 * t).exp_m1().sqrt();
        (s(self.t_range.0), s(self.t_range.1))
    }
}

/// Write float64 matrices (name, values) and JSON metadata as safetensors.
fn write_model(
    path: &std::path::Path,
    meta: &serde_json::Value,
    items: &[(&str, ArrayView2<f64>)],
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = items
        .iter()
        .map(|(_, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = items
        .iter()
        .zip(&bytes)
        .map(|((name, v), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, v.shape().to_vec(), b)
                .map(|v| (name.to_string(), v))
                .map_err(|e| invalid("model", e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let info = std::collections::HashMap::from([("scorelab.ntk".to_string(), meta.to_string())]);
    let out =
        safetensors::serialize(views, Some(info)).map_err(|e| invalid("model", e.to_string()))?;
    score_core::fs::write_atomic(path, &out).map_err(|e| invalid("model", e.to_string()))
}

/// The inputs z = (e^{−t}x, t, 1) for the EDM-form rows of `x` (`[B, d]`) at noise σ,
/// with t = ½ ln(1 + σ²) clamped to the fitted range: `[B, d + 2]`.
pub fn edm_inputs(x: ArrayView2<f64>, sigma: f64, t_range: (f64, f64)) -> Array2<f64> {
    let t = (0.5 * (sigma * sigma).ln_1p()).clamp(t_range.0, t_range.1);
    let a = (-t).exp();
    let (b, d) = x.dim();
    Array2::from_shape_fn((b, d + 2), |(i, j)| match j.cmp(&d) {
        std::cmp::Ordering::Less => a * x[[i, j]],
        std::cmp::Ordering::Equal => t,
        std::cmp::Ordering::Greater => 1.0,
    })
}

impl<const D: usize> Denoiser<D> for KernelEstimator {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, _cond: Option<&Conditioning>) -> Tensor<D> {
        let d = self.d();
        host_denoise(x, sigma, |rows, s| {
            on_rows(rows, d, |v| {
                self.denoise_edm(v, s).expect("rows of dimension d")
            })
        })
        .expect("float tensor data")
    }
}

/// The finite-width network trained by full-batch GD on the DSM regression, as an
/// estimator of f* (the object the paper's theory is about); a `Denoiser` in EDM form.
#[derive(Debug, Clone)]
pub struct NetworkEstimator {
    /// The trained network (inputs z = (x, t, 1)).
    pub net: crate::network::TwoLayerRelu,
    /// The fitted time range [t₀, T].
    pub t_range: (f64, f64),
    /// GD steps taken.
    pub steps: usize,
}

impl NetworkEstimator {
    /// Train a width-`m` network (symmetric initialisation) for `steps` GD steps with
    /// η = 1/max_i κ(z_i, z_i) (so that η·λ_max(H)/N ≤ 1 for its NTK).
    pub fn fit(
        triples: &Triples,
        m: usize,
        steps: usize,
        t_range: (f64, f64),
        seed: u64,
    ) -> Result<Self> {
        let (p, d) = (triples.p(), triples.d());
        let mut net = crate::network::TwoLayerRelu::symmetric(m, p, d, seed)?;
        let kmax = triples
            .z
            .rows()
            .into_iter()
            .map(|z| Kernel::Ntk1.eval(z, z))
            .fold(0.0, f64::max);
        let eta = 1.0 / kmax.max(1e-300);
        for _ in 0..steps {
            net.gd_step(triples.z.view(), triples.y.view(), eta);
        }
        Ok(Self {
            net,
            t_range,
            steps,
        })
    }

    /// Mean squared error per coordinate against labels `y` of the inputs `z`.
    pub fn mse_to(&self, z: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
        let f = self.net.forward(z);
        f.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / f.len() as f64
    }

    /// The EDM-form denoiser on the rows of `x` at one σ.
    pub fn denoise_edm(&self, x: ArrayView2<f64>, sigma: f64) -> Array2<f64> {
        self.net.forward(edm_inputs(x, sigma, self.t_range).view())
    }

    /// Save as safetensors (`w`, `a`, metadata).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let meta = serde_json::json!({"kind": "network", "m": self.net.m(), "p": self.net.p(), "d": self.net.d(), "t0": self.t_range.0, "t1": self.t_range.1, "steps": self.steps});
        write_model(
            path,
            &meta,
            &[("w", self.net.w.view()), ("a", self.net.a.view())],
        )
    }
}

impl<const D: usize> Denoiser<D> for NetworkEstimator {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, _cond: Option<&Conditioning>) -> Tensor<D> {
        let d = self.net.d();
        host_denoise(x, sigma, |rows, s| {
            on_rows(rows, d, |v| self.denoise_edm(v, s))
        })
        .expect("float tensor data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_search_follows_its_criterion_past_k_max() {
        // A criterion whose minimum lies at 5·10⁶, searched from --k-max 10⁵: the old
        // search stopped at 10⁵ without a word; this one extends by decades until the
        // criterion turns.
        let err = |k: usize| Ok(((k as f64).ln() - 5e6f64.ln()).powi(2));
        let (k, _, to) = search_until_turn(100_000, 1, err).unwrap();
        assert!((k as f64 / 5e6 - 1.0).abs() < 0.2, "k = {k}");
        assert!(to > k, "searched to {to}, past the minimum");
        // A minimum inside the first search: exactly the old grid search.
        let inside = |k: usize| Ok(((k as f64).ln() - 300f64.ln()).powi(2));
        let (k, _, to) = search_until_turn(100_000, 4, inside).unwrap();
        let old = k_grid(100_000).into_iter().step_by(4);
        let want = old.min_by(|&a, &b| inside(a).unwrap().total_cmp(&inside(b).unwrap()));
        assert_eq!((Some(k), to), (want, 100_000));
        // A criterion that never turns stops at K_LIMIT, and says so by k == searched.
        let (k, _, to) = search_until_turn(1000, 1, |k| Ok(1.0 / k as f64)).unwrap();
        assert_eq!((k, to), (K_LIMIT, K_LIMIT));
    }
}
