//! DPM-Solver-v3 (Zheng, Lu, Bao, Zhu, NeurIPS 2023): a multistep solver of the
//! probability-flow ODE whose parameterisation is fitted to the model through
//! *empirical model statistics* (EMS).
//!
//! Derivation in EDM's variables (α = 1, σ = e^{−λ}): along λ the data-prediction ODE is
//! dx/dλ = D(x, λ) − x. With per-dimension statistics l_λ, s_λ, b_λ ∈ ℝ^d:
//!
//! - f := D − l⊙x, so dx/dλ = −(1 − l)⊙x + f and, exactly,
//!   x_t = E(λ_s→λ_t)⊙x_s + ∫ E(τ→λ_t)⊙f_τ dτ with E(a→b) = exp(−∫_a^b (1 − l)).
//! - g_τ := e^{−S(λ_s,τ)}⊙f_τ − B(λ_s,τ), with S(a,τ) = ∫_a^τ s and
//!   B(a,τ) = ∫_a^τ e^{−S(a,r)}⊙b_r dr, so that f_τ = e^{S(λ_s,τ)}⊙(g_τ + B(λ_s,τ)) and
//!   x_t = E x_s + ∫ E e^{S} B dτ + ∫ E e^{S} g_τ dτ.
//! - g is expanded in Taylor terms at λ_s, g^{(k)} estimated from the last p evaluations
//!   (divided differences), and the weights ∫ E(τ→λ_t) e^{S(λ_s,τ)}(τ − λ_s)^k/k! dτ are
//!   computed per dimension by quadrature from the statistics.
//!
//! The statistics minimise what the expansion leaves out: l = E[diag ∂D/∂x] (the
//! linear part of D, so that f varies least with x), and s, b the per-dimension least
//! squares fit f' ≈ s⊙f + b of f's λ-derivative along the ODE (so that g varies least
//! with λ). [`ModelStatistics::estimate`] computes them from a model on data (Hutchinson
//! probes for the Jacobian diagonal, a finite difference along the ODE for f'); the
//! authors' code for this is not released, so this is our derivation from the paper.
//! With l = s = b = 0 the solver is DPM-Solver++ with exact Taylor integrals (tested
//! against [`super::dpmpp_3m_sde_sample`] at η = 0 with the exact
//! coefficient); for a diagonal Gaussian the statistics have a closed form
//! ([`ModelStatistics::diagonal_gaussian`]) under which g is constant and the
//! first-order solver is exact (tested).
//!
//! As the reference runs it ([`V3Options`]' defaults): the multistep predictor of
//! order p ≤ 3 with the last steps at lower order, the pseudo-order (Taylor terms from
//! divided differences) at 5 steps or fewer, and at 6 or fewer the multistep corrector,
//! which redoes the step into each new point with that point's evaluation among the
//! interpolation points, keeping its f (no extra evaluation).

use burn::tensor::{Device, Tensor};

use super::context::{SampleContext, SampleOutput, check_grid};
use crate::denoiser::Denoiser;
use crate::error::{Result, ScoreError};
use crate::tensor::{from_f64_as, randn_like, sigma_tensor, stream_rng, to_vec_f64};

/// Empirical model statistics l, s, b on an increasing grid of λ = −ln σ.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelStatistics {
    /// Data dimension d.
    pub dim: usize,
    /// The λ grid, increasing.
    pub lambdas: Vec<f64>,
    /// l at each grid point, `[K][d]`.
    pub l: Vec<Vec<f64>>,
    /// s at each grid point.
    pub s: Vec<Vec<f64>>,
    /// b at each grid point.
    pub b: Vec<Vec<f64>>,
    /// The model the statistics were estimated on ([`crate::fs::file_digest`] of its
    /// checkpoint), so that another model's statistics are refused; absent in files
    /// of earlier versions and for statistics not estimated from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

fn lambda_grid(sigma_min: f64, sigma_max: f64, k: usize) -> Vec<f64> {
    let (lo, hi) = (-sigma_max.ln(), -sigma_min.ln());
    (0..k)
        .map(|i| lo + (hi - lo) * i as f64 / (k - 1).max(1) as f64)
        .collect()
}

impl ModelStatistics {
    /// All-zero statistics (the solver is then DPM-Solver++).
    pub fn zero(dim: usize, sigma_min: f64, sigma_max: f64) -> Self {
        let lambdas = lambda_grid(sigma_min, sigma_max, 2);
        let z = vec![vec![0.0; dim]; 2];
        Self {
            dim,
            lambdas,
            l: z.clone(),
            s: z.clone(),
            b: z,
            model: None,
        }
    }

    /// The closed form for N(μ, diag v): D_j = μ_j + a_j(x_j − μ_j) with
    /// a_j = v_j/(v_j + σ²), so l = a; f = (1 − a)μ does not depend on x, hence s = 0,
    /// and b = df/dλ = −2a(1 − a)μ (da/dλ = 2a(1 − a) since σ² = e^{−2λ}).
    pub fn diagonal_gaussian(
        mean: &[f64],
        var: &[f64],
        sigma_min: f64,
        sigma_max: f64,
        k: usize,
    ) -> Self {
        let lambdas = lambda_grid(sigma_min, sigma_max, k.max(2));
        let a = |lam: f64| -> Vec<f64> {
            let s2 = (-2.0 * lam).exp();
            var.iter().map(|v| v / (v + s2)).collect()
        };
        let l: Vec<Vec<f64>> = lambdas.iter().map(|&lam| a(lam)).collect();
        let b = l
            .iter()
            .map(|a| {
                a.iter()
                    .zip(mean)
                    .map(|(a, m)| -2.0 * a * (1.0 - a) * m)
                    .collect()
            })
            .collect();
        Self {
            dim: mean.len(),
            lambdas,
            s: vec![vec![0.0; mean.len()]; l.len()],
            l,
            b,
            model: None,
        }
    }

    /// Estimate the statistics of `den` from clean data `x0` (`[n, …]`, d values per
    /// row) on `k` λ points between σ_min and σ_max: at each λ, x = x0 + σz;
    /// l = mean over samples of v⊙(D(x + εv) − D(x − εv))/(2ε) with one Rademacher v
    /// per sample (Hutchinson's estimator of the Jacobian diagonal); then f = D − l⊙x,
    /// f' = (f(x + δ(D − x), λ + δ) − f(x, λ))/δ along the ODE, and per dimension
    /// s = Cov(f', f)/Var(f) (0 when Var f is below l_err²·E x², the spread l's error
    /// would cause: u·|D| over the probe step, at least 1e-5), b = E f' − s E f.
    /// The probe step balances truncation against the rounding of the network's
    /// output type ([`probe_step`]), so float32 networks get usable statistics.
    /// Network evaluations: 4 per λ point on the batch.
    pub fn estimate<const D: usize, M: Denoiser<D> + ?Sized>(
        den: &M,
        x0: Tensor<D>,
        sigma_min: f64,
        sigma_max: f64,
        k: usize,
        seed: u64,
    ) -> Result<Self> {
        let dims = x0.dims();
        let (n, d) = (dims[0], dims.iter().skip(1).product::<usize>());
        if n < 2 || k < 2 {
            return Err(ScoreError::invalid(
                "statistics",
                format!("need at least 2 samples and 2 λ points, got {n} and {k}"),
            ));
        }
        let lambdas = lambda_grid(sigma_min, sigma_max, k);
        let dev = x0.device();
        let dtype = x0.dtype();
        let eval = |x: &Tensor<D>, lam: f64| -> Result<Vec<f64>> {
            to_vec_f64(den.denoise(x.clone(), sigma_tensor((-lam).exp(), n, &dev), None))
        };
        // The noisy points of λ point i, the same in both passes.
        let noisy = |i: usize| {
            let mut rng = stream_rng(seed, 0x454d_5300, i as u64);
            let x = x0.clone() + randn_like(&x0, &mut rng).mul_scalar((-lambdas[i]).exp());
            let v = randn_like(&x0, &mut rng).sign();
            (x, v)
        };
        // Pass 1: l, the Jacobian diagonal, by Hutchinson probes.
        let u = output_rounding(dtype);
        let ls = jacobian_diagonals(&lambdas, d, u, &eval, &noisy)?;
        // Pass 2: f = D − l⊙x and its derivative along the ODE,
        // f' = dD/dλ − l⊙dx/dλ − l'⊙x: the first two by a step δ along the ODE with l
        // held, l' from central differences of pass 1's grid; then the per-dimension
        // least squares f' ≈ s⊙f + b.
        let delta = 1e-3;
        let (mut ss, mut bs) = (Vec::with_capacity(k), Vec::with_capacity(k));
        for (i, &lam) in lambdas.iter().enumerate() {
            let (x, _) = noisy(i);
            let den_x = eval(&x, lam)?;
            let xs = to_vec_f64(x)?;
            let x_next: Vec<f64> = xs
                .iter()
                .zip(&den_x)
                .map(|(x, dx)| x + delta * (dx - x))
                .collect();
            let x_next_t = from_f64_as(&x_next, [n * d], dtype, &dev).reshape(dims);
            let den_next = eval(&x_next_t, lam + delta)?;
            let (a, c) = (i.saturating_sub(1), (i + 1).min(k - 1));
            let lp: Vec<f64> = (0..d)
                .map(|j| (ls[c][j] - ls[a][j]) / (lambdas[c] - lambdas[a]))
                .collect();
            // l's rounding error: u·|D| over the probe step (at least 1e-5).
            let rms = (den_x.iter().map(|v| v * v).sum::<f64>() / den_x.len() as f64).sqrt();
            let l_err = (u * rms / probe_step((-lam).exp(), u)).max(1e-5);
            let (s, b) = least_squares_s_b(
                &Pass2 {
                    den_x: &den_x,
                    xs: &xs,
                    den_next: &den_next,
                    x_next: &x_next,
                },
                (&ls[i], &lp, l_err),
                d,
                delta,
            );
            ss.push(s);
            bs.push(b);
        }
        Ok(Self {
            dim: d,
            lambdas,
            l: ls,
            s: ss,
            b: bs,
            model: None,
        })
    }
}

/// The statistics on a fine uniform λ grid with cumulative integrals: L = ∫l, S = ∫s,
/// C = ∫e^{−S} b, for exact-enough quadrature of the solver's weights.
struct Tables {
    lo: f64,
    step: f64,
    l: Vec<Vec<f64>>,
    big_l: Vec<Vec<f64>>,
    big_s: Vec<Vec<f64>>,
    big_c: Vec<Vec<f64>>,
}

/// One step of the solver from the state `xs` at λ_s to λ_t, row-major `[n, d]`, with
/// g's Taylor terms from `points` (λ_i, f_i), the expansion point λ_s first. With
/// `pseudo`, the terms are Newton's divided differences (g' ≈ g[λ₀, λ₁], the
/// reference's pseudo-order); otherwise the derivatives at λ_s of the interpolating
/// polynomial.
fn v3_step(
    tab: &Tables,
    xs: &[f64],
    points: &[(f64, &[f64])],
    lt: f64,
    pseudo: bool,
    d: usize,
) -> Vec<f64> {
    let ls = points[0].0;
    let [_, _, big_s_s, big_c_s] = tab.at(ls);
    let p = points.len();
    // g at the points (g_s = f_s), then its Taylor coefficients.
    let gs: Vec<Vec<f64>> = points
        .iter()
        .map(|(li, fi)| {
            let [_, _, big_s_i, big_c_i] = tab.at(*li);
            (0..xs.len())
                .map(|q| {
                    let j = q % d;
                    (-(big_s_i[j] - big_s_s[j])).exp() * fi[q]
                        - big_s_s[j].exp() * (big_c_i[j] - big_c_s[j])
                })
                .collect()
        })
        .collect();
    let lam: Vec<f64> = points.iter().map(|(l, _)| *l).collect();
    let (e_st, w_b, w_k) = step_weights(tab, ls, lt, p);
    (0..xs.len())
        .map(|q| {
            let j = q % d;
            let g0 = gs[0][q];
            let mut acc = e_st[j] * xs[q] + w_b[j] + w_k[0][j] * g0;
            if p >= 2 {
                let d01 = (g0 - gs[1][q]) / (lam[0] - lam[1]);
                let (mut d1, mut d2) = (d01, 0.0);
                if p == 3 {
                    let d12 = (gs[1][q] - gs[2][q]) / (lam[1] - lam[2]);
                    let d012 = (d01 - d12) / (lam[0] - lam[2]);
                    if !pseudo {
                        d1 += d012 * (lam[0] - lam[1]);
                    }
                    d2 = 2.0 * d012;
                }
                acc += w_k[1][j] * d1;
                if p == 3 {
                    acc += w_k[2][j] * d2;
                }
            }
            acc
        })
        .collect()
}

/// The relative rounding error of a network's output in `dtype`: 16 unit roundoffs
/// (a network's sums grow rounding beyond one).
fn output_rounding(dtype: burn::tensor::DType) -> f64 {
    use burn::tensor::DType;
    16.0 * match dtype {
        DType::F64 => 2f64.powi(-53),
        DType::F16 => 2f64.powi(-11),
        DType::BF16 => 2f64.powi(-8),
        _ => 2f64.powi(-24),
    }
}

/// The central difference's probe step at σ for outputs with relative rounding `u`:
/// its truncation error grows as (ε/σ)² (D varies on the scale σ), its rounding error
/// as u/ε, balanced at ε = (u σ²)^{1/3}; never below 10⁻³σ. In float64 that floor is
/// the step everywhere on [0.002, 80]; in float32 the balance gives 0.1σ at σ = 0.002,
/// where 10⁻³σ made the rounding error of l about 0.5.
fn probe_step(sigma: f64, u: f64) -> f64 {
    (1e-3 * sigma.max(1e-3)).max((u * sigma * sigma).cbrt())
}

/// Pass 1 of [`ModelStatistics::estimate`]: at each λ, the diagonal of D's Jacobian
/// per dimension, by Hutchinson probes (`noisy(i)`: the points and ±1 probes of λ
/// point i) and central differences of `eval`.
fn jacobian_diagonals<const D: usize>(
    lambdas: &[f64],
    d: usize,
    u: f64,
    eval: &dyn Fn(&Tensor<D>, f64) -> Result<Vec<f64>>,
    noisy: &dyn Fn(usize) -> (Tensor<D>, Tensor<D>),
) -> Result<Vec<Vec<f64>>> {
    let mut ls = Vec::with_capacity(lambdas.len());
    for (i, &lam) in lambdas.iter().enumerate() {
        let (x, v) = noisy(i);
        let n = x.dims()[0];
        let eps = probe_step((-lam).exp(), u);
        let dp = eval(&(x.clone() + v.clone().mul_scalar(eps)), lam)?;
        let dm = eval(&(x - v.clone().mul_scalar(eps)), lam)?;
        let vs = to_vec_f64(v)?;
        let mut l = vec![0.0; d];
        for q in 0..n * d {
            l[q % d] += vs[q] * (dp[q] - dm[q]) / (2.0 * eps) / n as f64;
        }
        ls.push(l);
    }
    Ok(ls)
}

/// The points of one λ of [`ModelStatistics::estimate`]'s second pass, row-major
/// `[n, d]`: D at x, x, and both after a step δ along the ODE.
struct Pass2<'a> {
    den_x: &'a [f64],
    xs: &'a [f64],
    den_next: &'a [f64],
    x_next: &'a [f64],
}

/// Per dimension j, the least-squares fit f' ≈ s·f + b over the n samples, where
/// f = D − l⊙x and f' = (f(x_next) − f(x))/δ − l'⊙x.
fn least_squares_s_b(
    p: &Pass2<'_>,
    (l, lp, l_err): (&[f64], &[f64], f64),
    d: usize,
    delta: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = p.xs.len() / d;
    let (mut s, mut b) = (vec![0.0; d], vec![0.0; d]);
    for j in 0..d {
        let pairs: Vec<(f64, f64)> = (0..n)
            .map(|r| {
                let q = r * d + j;
                let f0 = p.den_x[q] - l[j] * p.xs[q];
                let f1 = p.den_next[q] - l[j] * p.x_next[q];
                (f0, (f1 - f0) / delta - lp[j] * p.xs[q])
            })
            .collect();
        let mf = pairs.iter().map(|p| p.0).sum::<f64>() / n as f64;
        let mg = pairs.iter().map(|p| p.1).sum::<f64>() / n as f64;
        let var = pairs.iter().map(|p| (p.0 - mf).powi(2)).sum::<f64>() / n as f64;
        let cov = pairs.iter().map(|p| (p.0 - mf) * (p.1 - mg)).sum::<f64>() / n as f64;
        // f's spread across samples is only signal when it exceeds what l's error
        // makes of E x² (l_err² E x²): below that s is noise and set to 0.
        let x2 = (0..n).map(|r| p.xs[r * d + j].powi(2)).sum::<f64>() / n as f64;
        s[j] = if var > l_err * l_err * x2 {
            cov / var
        } else {
            0.0
        };
        b[j] = mg - s[j] * mf;
    }
    (s, b)
}

fn interp(xs: &[f64], ys: &[Vec<f64>], x: f64) -> Vec<f64> {
    let k = xs.len();
    if x <= xs[0] {
        return ys[0].clone();
    }
    if x >= xs[k - 1] {
        return ys[k - 1].clone();
    }
    let i = xs.partition_point(|&v| v <= x).clamp(1, k - 1);
    let t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
    ys[i - 1]
        .iter()
        .zip(&ys[i])
        .map(|(a, b)| a + t * (b - a))
        .collect()
}

impl Tables {
    fn new(ms: &ModelStatistics, lo: f64, hi: f64) -> Self {
        let m = 2049;
        let step = (hi - lo) / (m - 1) as f64;
        let at = |i: usize| lo + step * i as f64;
        let l: Vec<Vec<f64>> = (0..m).map(|i| interp(&ms.lambdas, &ms.l, at(i))).collect();
        let s: Vec<Vec<f64>> = (0..m).map(|i| interp(&ms.lambdas, &ms.s, at(i))).collect();
        let b: Vec<Vec<f64>> = (0..m).map(|i| interp(&ms.lambdas, &ms.b, at(i))).collect();
        let d = ms.dim;
        let cumulative = |f: &dyn Fn(usize, usize) -> f64| -> Vec<Vec<f64>> {
            let mut out = vec![vec![0.0; d]; m];
            for i in 1..m {
                for j in 0..d {
                    out[i][j] = out[i - 1][j] + 0.5 * step * (f(i - 1, j) + f(i, j));
                }
            }
            out
        };
        let big_l = cumulative(&|i, j| l[i][j]);
        let big_s = cumulative(&|i, j| s[i][j]);
        let big_c = cumulative(&|i, j| (-big_s[i][j]).exp() * b[i][j]);
        Self {
            lo,
            step,
            l,
            big_l,
            big_s,
            big_c,
        }
    }

    /// (l, L, S, C) at λ, linearly interpolated, per dimension.
    fn at(&self, lam: f64) -> [Vec<f64>; 4] {
        let m = self.l.len();
        let pos = ((lam - self.lo) / self.step).clamp(0.0, (m - 1) as f64);
        let i = (pos.floor() as usize).min(m - 2);
        let t = pos - i as f64;
        let mix = |v: &Vec<Vec<f64>>| -> Vec<f64> {
            v[i].iter()
                .zip(&v[i + 1])
                .map(|(a, b)| a + t * (b - a))
                .collect()
        };
        [
            mix(&self.l),
            mix(&self.big_l),
            mix(&self.big_s),
            mix(&self.big_c),
        ]
    }
}

/// DPM-Solver-v3 as a [`super::Sampler`]: its statistics and options.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct V3Sampler {
    /// The model statistics.
    pub stats: ModelStatistics,
    /// The options.
    pub opts: V3Options,
}

impl ModelStatistics {
    /// Save as JSON, atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let json = serde_json::to_vec(self)
            .map_err(|e| ScoreError::invalid("statistics", e.to_string()))?;
        crate::fs::write_atomic(path, &json)
    }

    /// The σ range the statistics cover: (σ_min, σ_max) of their λ grid.
    pub fn sigma_range(&self) -> (f64, f64) {
        let hi = self.lambdas.last().copied().unwrap_or(0.0);
        let lo = self.lambdas.first().copied().unwrap_or(0.0);
        ((-hi).exp(), (-lo).exp())
    }

    /// Check that these statistics belong to the model of digest `model` and cover
    /// the σ grid `sigmas` (its positive levels; the tables are held constant outside
    /// their range, which is another model of the data). `path` names the file.
    pub fn check_use(&self, path: &std::path::Path, model: &str, sigmas: &[f64]) -> Result<()> {
        if let Some(m) = &self.model
            && m != model
        {
            return Err(ScoreError::invalid(
                "--ems",
                format!(
                    "{}: estimated on another model ({m}; this checkpoint is {model}): run `scorelab ems --checkpoint …` for it",
                    path.display()
                ),
            ));
        }
        let (lo, hi) = self.sigma_range();
        let pos = sigmas.iter().copied().filter(|&s| s > 0.0);
        let (gmin, gmax) = pos.fold((f64::INFINITY, 0.0f64), |(a, b), s| (a.min(s), b.max(s)));
        // Relative slack for the exp(−λ) round trip of the grid's ends.
        if gmin < lo * (1.0 - 1e-9) || gmax > hi * (1.0 + 1e-9) {
            return Err(ScoreError::invalid(
                "--ems",
                format!(
                    "{}: covers σ from {lo} to {hi}, the sampling grid runs from {gmin} to {gmax}: estimate them over the grid's range (`scorelab ems --sigma-min {gmin} --sigma-max {gmax}`)",
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Load from [`ModelStatistics::save`]'s JSON, checking its shape.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let bytes = crate::fs::read_file(path)?;
        let ms: Self = serde_json::from_slice(&bytes)
            .map_err(|e| ScoreError::format(path, "statistics JSON", e.to_string()))?;
        let k = ms.lambdas.len();
        let ok_rows = |v: &Vec<Vec<f64>>| v.len() == k && v.iter().all(|r| r.len() == ms.dim);
        if k < 2
            || !ms.lambdas.windows(2).all(|w| w[1] > w[0])
            || !(ok_rows(&ms.l) && ok_rows(&ms.s) && ok_rows(&ms.b))
            || ms
                .l
                .iter()
                .chain(&ms.s)
                .chain(&ms.b)
                .flatten()
                .any(|v| !v.is_finite())
        {
            return Err(ScoreError::format(
                path,
                "statistics JSON",
                "lambdas: need ≥ 2 increasing points, and l, s, b of [points][dim] finite values",
            ));
        }
        Ok(ms)
    }
}

/// Options of [`dpm_solver_v3_sample`]. The defaults are the reference's (the
/// authors' EDM sampling script, thu-ml/DPM-Solver-v3): order 3, the last steps at
/// lower order, pseudo-order at 5 steps or fewer and the corrector at 6 or fewer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct V3Options {
    /// Multistep order p, 1 to 3 (the first steps use what their history allows).
    pub order: usize,
    /// Pseudo-order (Taylor terms from divided differences); `None`: the reference's
    /// rule, on at 5 steps or fewer.
    #[serde(default)]
    pub pseudo: Option<bool>,
    /// The multistep corrector (no extra evaluation: the step into the newest point is
    /// redone with it among the points, its f kept); `None`: the reference's rule, on
    /// at 6 steps or fewer.
    #[serde(default)]
    pub corrector: Option<bool>,
    /// The last solver steps at order 1 and 2 (the reference's `lower_order_final`).
    #[serde(default = "lower_order_final_default")]
    pub lower_order_final: bool,
}

fn lower_order_final_default() -> bool {
    true
}

impl Default for V3Options {
    fn default() -> Self {
        Self {
            order: 3,
            pseudo: None,
            corrector: None,
            lower_order_final: true,
        }
    }
}

impl V3Options {
    /// The multistep predictor alone at `order`: no corrector, no pseudo-order, no
    /// lower final orders (this crate's solver before the reference's refinements).
    pub fn predictor(order: usize) -> Self {
        Self {
            order,
            pseudo: Some(false),
            corrector: Some(false),
            lower_order_final: false,
        }
    }

    /// (pseudo-order, corrector) on a run of `steps` network evaluations.
    fn resolve(&self, steps: usize) -> (bool, bool) {
        (
            self.pseudo.unwrap_or(steps <= 5),
            self.corrector.unwrap_or(steps <= 6),
        )
    }
}

/// The per-dimension weights of one step from λ_s to λ_t: E(λ_s→λ_t), the B-term and
/// the Taylor weights ∫E(τ→λ_t)e^{S(λ_s,τ)}(τ − λ_s)^k/k! dτ for k < p, by composite
/// Simpson quadrature on 128 intervals.
fn step_weights(tab: &Tables, ls: f64, lt: f64, p: usize) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let [_, big_l_s, big_s_s, big_c_s] = tab.at(ls);
    let [_, big_l_t, _, _] = tab.at(lt);
    let d = big_l_s.len();
    let e_st: Vec<f64> = (0..d)
        .map(|j| (-(lt - ls) + big_l_t[j] - big_l_s[j]).exp())
        .collect();
    let q = 128;
    let hq = (lt - ls) / q as f64;
    let (mut w_b, mut w_k) = (vec![0.0; d], vec![vec![0.0; d]; p]);
    for i in 0..=q {
        let tau = ls + hq * i as f64;
        let simpson = if i == 0 || i == q {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let c = simpson * hq / 3.0;
        let [_, big_l, big_s, big_c] = tab.at(tau);
        let mut fact = 1.0;
        let powers: Vec<f64> = (0..p)
            .map(|k| {
                if k > 0 {
                    fact *= k as f64;
                }
                (tau - ls).powi(k as i32) / fact
            })
            .collect();
        for j in 0..d {
            let e = (-(lt - tau) + big_l_t[j] - big_l[j] + big_s[j] - big_s_s[j]).exp();
            let b = big_s_s[j].exp() * (big_c[j] - big_c_s[j]);
            w_b[j] += c * e * b;
            for k in 0..p {
                w_k[k][j] += c * e * powers[k];
            }
        }
    }
    (e_st, w_b, w_k)
}

/// DPM-Solver-v3's multistep predictor of order p with statistics `ms`. The state is
/// handled as `[B, d]` rows; the step to σ = 0 returns the last denoised estimate.
/// NFE = N − k.
pub fn dpm_solver_v3_sample<const D: usize, M: Denoiser<D> + ?Sized>(
    den: &M,
    ms: &ModelStatistics,
    sigmas: &[f64],
    x: Tensor<D>,
    opts: &V3Options,
    ctx: &mut SampleContext<'_, D>,
) -> Result<SampleOutput<D>> {
    check_grid(sigmas, ctx.start_index)?;
    let dims = x.dims();
    let (n, d) = (dims[0], dims.iter().skip(1).product::<usize>());
    if d != ms.dim || !(1..=3).contains(&opts.order) {
        return Err(ScoreError::invalid(
            "dpm-solver-v3",
            format!(
                "statistics of dimension {} for data of dimension {d}, order {} (1 to 3)",
                ms.dim, opts.order
            ),
        ));
    }
    let positive: Vec<f64> = sigmas.iter().copied().filter(|&s| s > 0.0).collect();
    let (lo, hi) = (
        -positive.first().copied().unwrap_or(1.0).ln(),
        -positive.last().copied().unwrap_or(1.0).ln(),
    );
    let tab = Tables::new(ms, lo.min(hi), hi.max(lo + 1e-9));
    let (dev, dtype): (Device, _) = (x.device(), x.dtype());
    let total = sigmas.len() - 1 - ctx.start_index;
    let (pseudo, corrector) = opts.resolve(total);
    // The last interval that is a solver step (a final step to σ = 0 is a denoise).
    let solver_end = sigmas.len() - 1 - usize::from(sigmas.last() == Some(&0.0));
    let (mut xs, mut nfe) = (to_vec_f64(x)?, 0);
    // History: (λ_i, f_i) newest first; the previous step's start state and order.
    let mut hist: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut prev: Option<(Vec<f64>, usize)> = None;
    let mut out_x = Tensor::<D>::zeros(dims, (&dev, dtype));
    for i in ctx.start_index..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let xt = from_f64_as(&xs, [n * d], dtype, &dev).reshape(dims);
        let den_t = den.denoise(xt, sigma_tensor(s, n, &dev), ctx.cond);
        nfe += 1;
        let den_x = to_vec_f64(den_t.clone())?;
        let ls = -s.ln();
        let l_s = tab.at(ls)[0].clone();
        let f: Vec<f64> = (0..n * d).map(|q| den_x[q] - l_s[q % d] * xs[q]).collect();
        if let (true, Some((x_prev, p_used))) = (corrector, &prev)
            && *p_used > 1
        {
            let mut pts = vec![(hist[0].0, &hist[0].1[..]), (ls, &f[..])];
            pts.extend(hist[1..].iter().take(p_used - 2).map(|(l, v)| (*l, &v[..])));
            xs = v3_step(&tab, x_prev, &pts, ls, false, d);
        }
        hist.insert(0, (ls, f));
        hist.truncate(3);
        if s_next == 0.0 {
            // D at the (corrected) state with f kept: f + l⊙x (= D without a correction).
            xs = (0..n * d)
                .map(|q| hist[0].1[q] + l_s[q % d] * xs[q])
                .collect();
        } else {
            let mut p = opts.order.min(hist.len());
            if opts.lower_order_final {
                p = p.min(solver_end - i);
            }
            let pts: Vec<(f64, &[f64])> = hist[..p].iter().map(|(l, v)| (*l, &v[..])).collect();
            let x_next = v3_step(&tab, &xs, &pts, -s_next.ln(), pseudo, d);
            prev = Some((std::mem::replace(&mut xs, x_next), p));
        }
        out_x = from_f64_as(&xs, [n * d], dtype, &dev).reshape(dims);
        ctx.step_done(i, (s, s_next), &out_x, &den_t, nfe, total);
    }
    Ok(SampleOutput { x: out_x, nfe })
}
