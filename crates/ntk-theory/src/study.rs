//! The spec's four studies and the sampling check, as functions that return their
//! numbers and write a markdown table and SVG plots (`cargo xtask experiment ntk`).

use ndarray::Array2;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use score_core::array::row_major;
use score_core::metrics::{loglog_slope, mean_interval, sliced_w2};
use score_core::mixture::GaussianMixture;
use score_core::tensor::stream_rng;

use crate::dsm::{Target, TimeSampling, Triples};
use crate::error::{NtkError, Result};
use crate::estimator::{KernelEstimator, Stop, k_grid};
use crate::kernel_gd::{Spectral, alpha_krr, predict};
use crate::kernels::Kernel;
use crate::network::TwoLayerRelu;
use crate::stopping::rwy_stop;

/// `n` rows of `d` standard normal values.
fn randn(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, d), || {
        Distribution::<f64>::sample(&StandardNormal, &mut rng)
    })
}

fn op_norm(a: &Array2<f64>) -> Result<f64> {
    let n = a.nrows();
    let m = faer::Mat::from_fn(n, n, |i, j| a[[i, j]]);
    let ev = m
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|e| NtkError::LinAlg {
            what: "eigenvalues",
            detail: format!("{e:?}"),
        })?;
    Ok(ev.iter().fold(0.0f64, |acc, v| acc.max(v.abs())))
}

/// A score-core error as an NTK error (for the studies).
pub fn io(e: score_core::ScoreError) -> NtkError {
    NtkError::Invalid {
        field: "output",
        detail: e.to_string(),
    }
}

/// The result of [`width_study`].
#[derive(Debug, Clone)]
pub struct WidthStudy {
    /// (m, ‖H_m − H‖_op) per width.
    pub points: Vec<(f64, f64)>,
    /// ‖H‖_op.
    pub h_op: f64,
    /// Log-log slope of the norms in m.
    pub slope: f64,
}

/// Study 1: ‖H_m − H‖_op against width (n = 50 points z ~ N(0, I₃), mean over `seeds`).
pub fn width_study(widths: &[usize], seeds: u64) -> Result<WidthStudy> {
    let z = randn(50, 3, 3);
    let h = Kernel::Ntk1.gram(z.view())?;
    let mut pts = Vec::new();
    for &m in widths {
        let mut acc = 0.0;
        for s in 0..seeds {
            let hm = TwoLayerRelu::symmetric(m, 3, 1, 10 + s)?.empirical_ntk(z.view());
            acc += op_norm(&(hm - &h))?;
        }
        pts.push((m as f64, acc / seeds as f64));
    }
    Ok(WidthStudy {
        slope: loglog_slope(&pts),
        h_op: op_norm(&h)?,
        points: pts,
    })
}

/// Study 2: sup over 200 test points of |f_net − f_kernel| after k GD steps, for each
/// (width, k): the GD-trained network against kernel GD with its analytic NTK, on n = 100
/// DSM triples of N(1, 0.25) in d = 1.
pub fn coupling_study(widths: &[usize], ks: &[usize]) -> Result<Vec<(usize, usize, f64)>> {
    let target = Target::Gaussian {
        dim: 1,
        mean: 1.0,
        var: 0.25,
    };
    let tr = Triples::draw(&target, 100, 0.01, 2.0, 1);
    let te = Triples::draw(&target, 200, 0.01, 2.0, 2);
    let h = Kernel::Ntk1.gram(tr.z.view())?;
    let kmax = h.diag().fold(0.0, |a: f64, &b| a.max(b));
    let eta = 1.0 / kmax; // η·λ_max/N ≤ 1
    let sp = Spectral::new(h.view(), tr.y.view())?;
    let cross = Kernel::Ntk1.cross_gram(te.z.view(), tr.z.view())?;
    let mut out = Vec::new();
    for &m in widths {
        for &k in ks {
            let mut net = TwoLayerRelu::symmetric(m, 3, 1, 7)?;
            for _ in 0..k {
                net.gd_step(tr.z.view(), tr.y.view(), eta);
            }
            let f_net = net.forward(te.z.view());
            let f_ker = predict(cross.view(), sp.alpha_gd(eta, k as u32).view());
            let gap = f_net
                .iter()
                .zip(&f_ker)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            out.push((m, k, gap));
        }
    }
    Ok(out)
}

/// One row of study 3: one target, time range, seed and n.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RateRow {
    /// Target name.
    pub target: String,
    /// The time range [t₀, T] of the triples.
    pub t_range: (f64, f64),
    /// Seed of the training draw.
    pub seed: u64,
    /// Training triples n.
    pub n: usize,
    /// Oracle-stopped GD: the best k on the grid and its test MSE against f*.
    pub k_oracle: usize,
    /// Its MSE.
    pub mse_oracle: f64,
    /// The interpolating estimator (ridge γ = 1e-8) MSE.
    pub mse_interp: f64,
    /// RWY's k and MSE (σ̂ from the training labels' exact noise level).
    pub k_rwy: usize,
    /// Its MSE.
    pub mse_rwy: f64,
}

/// The kernel set-up of one training draw: rescaled Gram, its spectrum, and the rescaled
/// cross Gram against the test inputs.
pub(crate) struct Fit {
    pub(crate) h: Array2<f64>,
    pub(crate) sp: Spectral,
    pub(crate) cross: Array2<f64>,
}

impl Fit {
    pub(crate) fn new(tr: &Triples, te: &Triples) -> Result<Self> {
        let mut h = Kernel::Ntk1.gram(tr.z.view())?;
        let scale = 1.0 / h.diag().fold(0.0, |a: f64, &b| a.max(b));
        h.iter_mut().for_each(|v| *v *= scale);
        let mut cross = Kernel::Ntk1.cross_gram(te.z.view(), tr.z.view())?;
        cross.iter_mut().for_each(|v| *v *= scale);
        let sp = Spectral::new(h.view(), tr.y.view())?;
        Ok(Self { h, sp, cross })
    }

    /// Predictions at the test inputs of coefficients `alpha`.
    pub(crate) fn at_test(&self, alpha: &Array2<f64>) -> Array2<f64> {
        predict(self.cross.view(), alpha.view())
    }
}

/// Mean squared difference of two arrays of the same shape.
pub(crate) fn msd(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

/// Studies 3 and 4: test MSE against f* of oracle-stopped kernel GD, the interpolating
/// estimator and the RWY rule, for each target, seed and n, with t ~ U[`t_range`].
pub fn rates_study(
    targets: &[(String, Target)],
    ns: &[usize],
    k_max: usize,
    t_range: (f64, f64),
    seeds: &[u64],
) -> Result<Vec<RateRow>> {
    let mut rows = Vec::new();
    for (name, target) in targets {
        for &seed in seeds {
            let te = Triples::draw(target, 1000, t_range.0, t_range.1, 99 + 7919 * seed);
            for &n in ns {
                let tr = Triples::draw(target, n, t_range.0, t_range.1, n as u64 + 7919 * seed);
                rows.push(rate_row(name, &tr, &te, k_max, t_range, seed)?);
            }
        }
    }
    Ok(rows)
}

fn rate_row(
    name: &str,
    tr: &Triples,
    te: &Triples,
    k_max: usize,
    t_range: (f64, f64),
    seed: u64,
) -> Result<RateRow> {
    let fit = Fit::new(tr, te)?;
    let mse = |alpha: &Array2<f64>| msd(&fit.at_test(alpha), &te.f_star);
    let (k_oracle, mse_oracle) = k_grid(k_max)
        .into_iter()
        .map(|k| (k, mse(&fit.sp.alpha_gd(1.0, k as u32))))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NAN));
    let mse_interp = mse(&alpha_krr(fit.h.view(), tr.y.view(), 1e-8)?);
    let k_rwy = rwy_stop(
        fit.sp.eigvals.view(),
        1.0,
        1.0,
        tr.label_noise_var().sqrt(),
        k_max,
    )?;
    Ok(RateRow {
        target: name.to_string(),
        t_range,
        seed,
        n: tr.len(),
        k_oracle,
        mse_oracle,
        mse_interp,
        k_rwy,
        mse_rwy: mse(&fit.sp.alpha_gd(1.0, k_rwy as u32)),
    })
}

/// Study 3's summary for one target and time range: per n the mean over seeds of
/// (MSE oracle, MSE interpolating, MSE RWY, k oracle, k RWY), and the log-log slopes in
/// n of the oracle and interpolating MSE (one slope per seed, then their mean with a
/// 95 % bootstrap interval over seeds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RateSummary {
    /// Target name.
    pub target: String,
    /// Time range.
    pub t_range: (f64, f64),
    /// Seeds.
    pub seeds: usize,
    /// Means over seeds per n.
    pub per_n: Vec<RatePoint>,
    /// Oracle slope (mean, low, high).
    pub slope_oracle: (f64, f64, f64),
    /// Interpolating slope (mean, low, high).
    pub slope_interp: (f64, f64, f64),
}

/// Means over seeds at one n of [`RateSummary`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct RatePoint {
    /// Training triples.
    pub n: usize,
    /// Mean oracle MSE.
    pub mse_oracle: f64,
    /// Mean interpolating MSE.
    pub mse_interp: f64,
    /// Mean RWY MSE.
    pub mse_rwy: f64,
    /// Mean oracle k.
    pub k_oracle: f64,
    /// Mean RWY k.
    pub k_rwy: f64,
    /// Mean of the per-seed ratio MSE RWY / MSE oracle.
    pub rwy_over_oracle: f64,
}

/// Summarise [`rates_study`] rows per (target, time range).
pub fn summarise_rates(rows: &[RateRow]) -> Vec<RateSummary> {
    let mut keys: Vec<(String, (f64, f64))> = Vec::new();
    for r in rows {
        if !keys.iter().any(|k| k.0 == r.target && k.1 == r.t_range) {
            keys.push((r.target.clone(), r.t_range));
        }
    }
    keys.into_iter()
        .map(|(target, t_range)| {
            let sel: Vec<&RateRow> = rows
                .iter()
                .filter(|r| r.target == target && r.t_range == t_range)
                .collect();
            let mut ns: Vec<usize> = sel.iter().map(|r| r.n).collect();
            ns.sort_unstable();
            ns.dedup();
            let mut seeds: Vec<u64> = sel.iter().map(|r| r.seed).collect();
            seeds.sort_unstable();
            seeds.dedup();
            let mean = |n: usize, f: &dyn Fn(&RateRow) -> f64| {
                let v: Vec<f64> = sel.iter().filter(|r| r.n == n).map(|r| f(r)).collect();
                v.iter().sum::<f64>() / v.len() as f64
            };
            let per_n = ns
                .iter()
                .map(|&n| RatePoint {
                    n,
                    mse_oracle: mean(n, &|r| r.mse_oracle),
                    mse_interp: mean(n, &|r| r.mse_interp),
                    mse_rwy: mean(n, &|r| r.mse_rwy),
                    k_oracle: mean(n, &|r| r.k_oracle as f64),
                    k_rwy: mean(n, &|r| r.k_rwy as f64),
                    rwy_over_oracle: mean(n, &|r| r.mse_rwy / r.mse_oracle),
                })
                .collect();
            let slope = |f: &dyn Fn(&RateRow) -> f64| {
                let per_seed: Vec<f64> = seeds
                    .iter()
                    .map(|&s| {
                        let pts: Vec<(f64, f64)> = sel
                            .iter()
                            .filter(|r| r.seed == s)
                            .map(|r| (r.n as f64, f(r)))
                            .collect();
                        loglog_slope(&pts)
                    })
                    .collect();
                mean_interval(&per_seed, 2000, 0)
            };
            RateSummary {
                seeds: seeds.len(),
                slope_oracle: slope(&|r| r.mse_oracle),
                slope_interp: slope(&|r| r.mse_interp),
                target,
                t_range,
                per_n,
            }
        })
        .collect()
}

/// What one sampling check measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SamplingResult {
    /// Sliced W2 of the samples to fresh target samples.
    pub sliced_w2: f64,
    /// The two-sample floor: sliced W2 between two target draws of the same size.
    pub floor: f64,
    /// Mean NLL of the samples under the target.
    pub nll: f64,
    /// Mean NLL of true samples.
    pub nll_true: f64,
    /// GD steps chosen.
    pub k: usize,
}

/// The sampling check: fit the kernel estimator (stopped by `stop`, GD steps searched up
/// to 1e7) on `n` triples of a 2-D two-component mixture, sample 2 000 points with
/// score-core's Heun sampler (32 levels), and compare with the true mixture.
pub fn sampling_check(
    n: usize,
    seed: u64,
    times: TimeSampling,
    stop: Stop,
) -> Result<SamplingResult> {
    let target = Target::TwoMixture {
        dim: 2,
        c: 2.0,
        var: 0.25,
    };
    let (t0, t1) = (0.01, 3.0);
    let tr = Triples::draw_with(&target, n, t0, t1, seed, times);
    let est = KernelEstimator::fit(&tr, Kernel::Ntk1, 1.0, stop, 10_000_000, (t0, t1))?;
    let m = 2000;
    let xs = est.sample(m, 32, seed + 1)?;
    let gm = GaussianMixture::new(
        vec![0.5, 0.5],
        vec![vec![2.0, 2.0], vec![-2.0, -2.0]],
        vec![vec![0.25; 2]; 2],
    )
    .map_err(|e| NtkError::Invalid {
        field: "mixture",
        detail: e.to_string(),
    })?;
    let mut rng = stream_rng(seed, 7, 0);
    let truth = gm.sample(m, &mut rng);
    let other = gm.sample(m, &mut rng);
    Ok(SamplingResult {
        sliced_w2: sliced_w2(&row_major(xs.view()), &truth, 2, 128, 0).map_err(io)?,
        floor: sliced_w2(&other, &truth, 2, 128, 0).map_err(io)?,
        nll: gm.mean_nll(&row_major(xs.view())),
        nll_true: gm.mean_nll(&truth),
        k: est.steps,
    })
}

/// One row of the stopping sweep on the 1-D Gaussian N(1, 0.25).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepRow {
    /// The rule, as `scorelab ntk fit --stop` spells it.
    pub stop: String,
    /// Seed of the draw.
    pub seed: u64,
    /// GD steps (0 for ridge).
    pub k: usize,
    /// Test MSE against f* over t ~ U[t₀, T] (the paper's criterion).
    pub mse: f64,
    /// Sample mean (true 1).
    pub mean: f64,
    /// Sample standard deviation (true 0.5).
    pub std: f64,
}

/// The stopping sweep: for each rule, fit `n` triples of N(1, 0.25) over t ∈ [0.01, 3],
/// measure the test MSE against f* and the mean and std of 2 000 Heun samples.
pub fn stopping_sweep(n: usize, seeds: &[u64], stops: &[(&str, Stop)]) -> Result<Vec<SweepRow>> {
    let target = Target::Gaussian {
        dim: 1,
        mean: 1.0,
        var: 0.25,
    };
    let (t0, t1) = (0.01, 3.0);
    let mut rows = Vec::new();
    for &seed in seeds {
        let tr = Triples::draw(&target, n, t0, t1, 500 + seed);
        let te = Triples::draw(&target, 1000, t0, t1, 600 + seed);
        for (name, stop) in stops {
            let est = KernelEstimator::fit(&tr, Kernel::Ntk1, 1.0, *stop, 10_000_000, (t0, t1))?;
            let xs = est.sample(2000, 32, seed)?;
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
            rows.push(SweepRow {
                stop: name.to_string(),
                seed,
                k: est.steps,
                mse: est.mse(&te)?,
                mean,
                std: var.sqrt(),
            });
        }
    }
    Ok(rows)
}
