//! `cargo xtask experiment ntk`: every study of [`ntk_theory::study`] and
//! [`ntk_theory::decomposition`], written as `ntk.md`, `ntk.json` and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use score_core::metrics::{loglog_slope, mean_interval};
use score_eval::plot::{Plot, Series};

use ntk_theory::decomposition::{KernelTerms, NetworkTerms, kernel_terms, network_terms};
use ntk_theory::dsm::{Target, TimeSampling};
use ntk_theory::error::Result;
use ntk_theory::estimator::Stop;
use ntk_theory::study::{
    RatePoint, RateRow, RateSummary, SamplingResult, SweepRow, WidthStudy, coupling_study, io,
    rates_study, sampling_check, stopping_sweep, summarise_rates, width_study,
};

/// A named field of [`KernelTerms`].
type Term = (&'static str, fn(&KernelTerms) -> f64);

/// The main time range of the studies: t ~ U[0.01, 2].
pub const T_RANGE: (f64, f64) = (0.01, 2.0);

const GAUSS_1D: Target = Target::Gaussian {
    dim: 1,
    mean: 1.0,
    var: 0.25,
};

fn plot(out: &Path, file: &str, title: &str, x: &str, y: &str, series: Vec<Series>) -> Result<()> {
    Plot {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        log_x: true,
        log_y: true,
        series,
        y_range: None,
    }
    .save(&out.join(file))
    .map_err(io)
}

fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.into(),
        points,
        markers_only: false,
    }
}

fn width_section(md: &mut String, out: &Path, quick: bool) -> Result<serde_json::Value> {
    let widths: &[usize] = if quick {
        &[100, 1000]
    } else {
        &[100, 1_000, 10_000, 100_000]
    };
    let WidthStudy {
        points,
        h_op,
        slope,
    } = width_study(widths, 3)?;
    let _ = writeln!(
        md,
        "## 1. Empirical NTK → analytic NTK\n\nn = 50, z ~ N(0, I₃), mean over 3 initialisations; ‖H‖_op = {h_op:.2}.\n\n| m | ‖H_m − H‖_op |\n|---:|---:|"
    );
    for (m, v) in &points {
        let _ = writeln!(md, "| {m:.0} | {v:.4} |");
    }
    let _ = writeln!(
        md,
        "\nlog-log slope **{slope:.3}** (theory −0.5; spec: 2.79, 0.74, 0.165, 0.057 for m = 1e2 … 1e5 with ‖H‖_op = 18.6).\n"
    );
    let reference = points
        .iter()
        .map(|(m, _)| (*m, points[0].1 * (points[0].0 / m).sqrt()))
        .collect();
    plot(
        out,
        "ntk_width.svg",
        "Empirical NTK → analytic NTK",
        "width m",
        "‖H_m − H‖_op",
        vec![
            line("measured", points.clone()),
            line("∝ m^(−1/2)", reference),
        ],
    )?;
    Ok(serde_json::json!({"points": points, "slope": slope, "h_op": h_op}))
}

fn coupling_section(md: &mut String, out: &Path, quick: bool) -> Result<serde_json::Value> {
    let ms: &[usize] = if quick {
        &[200, 2000]
    } else {
        &[200, 2_000, 20_000]
    };
    let ks = [10, 100, 1000];
    let coup = coupling_study(ms, &ks)?;
    let _ = writeln!(
        md,
        "## 2. GD-trained network vs kernel GD\n\nn = 100 DSM triples of N(1, 0.25), 200 test points, η·λ_max/N ≤ 1; sup |f_net − f_kernel|.\n\n| m | k = 10 | k = 100 | k = 1000 |\n|---:|---:|---:|---:|"
    );
    let gap = |m: usize, k: usize| {
        coup.iter()
            .find(|r| r.0 == m && r.1 == k)
            .map_or(f64::NAN, |r| r.2)
    };
    for &m in ms {
        let _ = writeln!(
            md,
            "| {m} | {:.4} | {:.4} | {:.4} |",
            gap(m, 10),
            gap(m, 100),
            gap(m, 1000)
        );
    }
    let _ = writeln!(
        md,
        "\n(spec at k = 10: 0.125, 0.060, 0.017 for m = 2e2, 2e3, 2e4.)\n"
    );
    let series = ks
        .iter()
        .map(|&k| {
            line(
                format!("k = {k}"),
                ms.iter().map(|&m| (m as f64, gap(m, k))).collect(),
            )
        })
        .collect();
    plot(
        out,
        "ntk_coupling.svg",
        "GD network vs kernel GD",
        "width m",
        "sup |f_net − f_kernel|",
        series,
    )?;
    Ok(serde_json::json!(coup))
}

fn targets() -> Vec<(String, Target)> {
    vec![
        ("gaussian-1d".into(), GAUSS_1D),
        (
            "gaussian-2d".into(),
            Target::Gaussian {
                dim: 2,
                mean: 1.0,
                var: 0.25,
            },
        ),
        (
            "mixture-1d".into(),
            Target::TwoMixture {
                dim: 1,
                c: 2.0,
                var: 0.25,
            },
        ),
    ]
}

fn interval(v: (f64, f64, f64)) -> String {
    format!("{:.2} [{:.2}, {:.2}]", v.0, v.1, v.2)
}

fn rates_section(md: &mut String, out: &Path, quick: bool) -> Result<serde_json::Value> {
    let (ns, seeds): (Vec<usize>, Vec<u64>) = if quick {
        (vec![100, 200, 400], vec![0, 1])
    } else {
        (vec![100, 200, 400, 800, 1600, 3200], (0..5).collect())
    };
    let mut rows: Vec<RateRow> = rates_study(&targets(), &ns, 100_000, T_RANGE, &seeds)?;
    let extra: &[(f64, f64)] = if quick {
        &[]
    } else {
        &[(0.001, 2.0), (0.01, 1.0)]
    };
    for &t_range in extra {
        let g = vec![("gaussian-1d".to_string(), GAUSS_1D)];
        rows.extend(rates_study(&g, &ns, 100_000, t_range, &seeds)?);
    }
    let sums = summarise_rates(&rows);
    let _ = writeln!(
        md,
        "## 3–4. Score error vs n, early stopping, RWY\n\nt ~ U[t₀, T], 1 000 test triples per seed, MSE per coordinate against the exact f*, mean over {} seeds (each seed a fresh training and test draw); oracle = best k on a geometric grid up to 1e5; interpolating = ridge with γ = 1e-8; RWY (RWY 2014, eq. 6: the step before the first violation) with σ̂ the training labels' exact noise level.\n\n| target | [t₀, T] | n | k oracle | MSE oracle | MSE interpolating | k RWY | MSE RWY | RWY / oracle |\n|---|---|---:|---:|---:|---:|---:|---:|---:|",
        seeds.len()
    );
    for s in &sums {
        for p in &s.per_n {
            let _ = writeln!(
                md,
                "| {} | [{}, {}] | {} | {:.0} | {:.5} | {:.5} | {:.1} | {:.5} | {:.2} |",
                s.target,
                s.t_range.0,
                s.t_range.1,
                p.n,
                p.k_oracle,
                p.mse_oracle,
                p.mse_interp,
                p.k_rwy,
                p.mse_rwy,
                p.rwy_over_oracle
            );
        }
    }
    let _ = writeln!(
        md,
        "\nLog-log slopes of the MSE in n (one slope per seed over all n; mean and 95 % bootstrap interval over seeds):\n\n| target | [t₀, T] | oracle slope | interpolating slope |\n|---|---|---|---|"
    );
    for s in &sums {
        let _ = writeln!(
            md,
            "| {} | [{}, {}] | {} | {} |",
            s.target,
            s.t_range.0,
            s.t_range.1,
            interval(s.slope_oracle),
            interval(s.slope_interp)
        );
    }
    let _ = writeln!(
        md,
        "\n(spec: oracle slope about −0.65 over n = 100 … 3200; the interpolating estimator plateaus near 0.09 in d = 1; RWY stops early, k = 2/5/11 against oracle 47/123/442 at n = 200/800/3200. The spec does not give its t₀ and T.)\n"
    );
    rates_plot(out, &sums)?;
    Ok(serde_json::json!({"rows": rows, "summary": sums}))
}

fn rates_plot(out: &Path, sums: &[RateSummary]) -> Result<()> {
    let mut series = Vec::new();
    for s in sums.iter().filter(|s| s.t_range == T_RANGE) {
        let pick = |f: fn(&RatePoint) -> f64| s.per_n.iter().map(|r| (r.n as f64, f(r))).collect();
        series.push(line(format!("{} oracle", s.target), pick(|r| r.mse_oracle)));
        series.push(line(
            format!("{} interp.", s.target),
            pick(|r| r.mse_interp),
        ));
        series.push(Series {
            label: format!("{} RWY", s.target),
            points: pick(|r| r.mse_rwy),
            markers_only: true,
        });
    }
    plot(
        out,
        "ntk_rates.svg",
        "Score (denoiser) error vs n (mean over seeds)",
        "n",
        "test MSE vs f*",
        series,
    )
}

/// Mean of `f` over the kernel-term rows at (n, k).
fn term_mean(rows: &[KernelTerms], n: usize, k: usize, f: fn(&KernelTerms) -> f64) -> f64 {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.n == n && r.k == k)
        .map(f)
        .collect();
    v.iter().sum::<f64>() / v.len() as f64
}

fn decomposition_section(md: &mut String, out: &Path, quick: bool) -> Result<serde_json::Value> {
    let (ns, seeds, ms, net_ks): (Vec<usize>, Vec<u64>, Vec<usize>, Vec<usize>) = if quick {
        (vec![200, 400], vec![0], vec![500], vec![10, 100])
    } else {
        (
            vec![200, 800, 3200],
            vec![0, 1, 2],
            vec![500, 5000],
            vec![10, 100, 1000],
        )
    };
    let ks = [10, 100, 1000, 10_000, 100_000];
    let mut kt = Vec::new();
    for &n in &ns {
        for &s in &seeds {
            kt.extend(kernel_terms(&GAUSS_1D, n, &ks, T_RANGE, s)?);
        }
    }
    let nt: Vec<NetworkTerms> = network_terms(&GAUSS_1D, ns[0], &ms, &net_ks, T_RANGE, 0)?;
    let _ = writeln!(
        md,
        "## Error decomposition (the paper's four terms)\n\nN(1, 0.25) in d = 1, t ~ U[{}, {}], 1 000 test triples; RMS over the test triples, mean over {} seeds. label mismatch = ‖f_ker,k(Y) − f_ker,k(F*)‖, early stopping = ‖f_ker,k(F*) − f_ker,∞(F*)‖, approximation = ‖f_ker,∞(F*) − f*‖ (f_ker,∞ = ridge γ = 1e-10), total = ‖f_ker,k(Y) − f*‖.\n\n| n | k | label mismatch | early stopping | approximation | total (kernel) |\n|---:|---:|---:|---:|---:|---:|",
        T_RANGE.0,
        T_RANGE.1,
        seeds.len()
    );
    for &n in &ns {
        for &k in &ks {
            let _ = writeln!(
                md,
                "| {n} | {k} | {:.4} | {:.4} | {:.4} | {:.4} |",
                term_mean(&kt, n, k, |r| r.label_mismatch),
                term_mean(&kt, n, k, |r| r.early_stopping),
                term_mean(&kt, n, k, |r| r.approximation),
                term_mean(&kt, n, k, |r| r.total)
            );
        }
    }
    let _ = writeln!(
        md,
        "\nThe network's terms at n = {} (seed 0): coupling = ‖f_net,k − f_ker,k(Y)‖, total = ‖f_net,k − f*‖, bound = coupling + the three kernel terms of that draw.\n\n| m | k | coupling | total (network) | bound |\n|---:|---:|---:|---:|---:|",
        ns[0]
    );
    for r in &nt {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.4} |",
            r.m, r.k, r.coupling, r.total, r.bound
        );
    }
    let slopes = decomposition_slopes(&kt, &nt, &ns, &ks, &seeds);
    let _ = writeln!(md, "\n{}\n", slopes.0);
    decomposition_plot(out, &kt, &ns, &ks)?;
    Ok(serde_json::json!({"kernel": kt, "network": nt, "slopes": slopes.1}))
}

/// The measured rates of the terms, as text and JSON.
fn decomposition_slopes(
    kt: &[KernelTerms],
    nt: &[NetworkTerms],
    ns: &[usize],
    ks: &[usize],
    seeds: &[u64],
) -> (String, serde_json::Value) {
    let per_seed_n = |k: usize, f: fn(&KernelTerms) -> f64| -> (f64, f64, f64) {
        let v: Vec<f64> = seeds
            .iter()
            .map(|&s| {
                let pts: Vec<(f64, f64)> = kt
                    .iter()
                    .filter(|r| r.k == k && r.seed == s)
                    .map(|r| (r.n as f64, f(r)))
                    .collect();
                loglog_slope(&pts)
            })
            .collect();
        mean_interval(&v, 2000, 0)
    };
    let n_mid = ns[ns.len() / 2];
    let stop_k: Vec<(f64, f64)> = ks
        .iter()
        .map(|&k| (k as f64, term_mean(kt, n_mid, k, |r| r.early_stopping)))
        .collect();
    let label_k: Vec<(f64, f64)> = ks
        .iter()
        .map(|&k| (k as f64, term_mean(kt, n_mid, k, |r| r.label_mismatch)))
        .collect();
    let k_mid = 100;
    let coup_m: Vec<(f64, f64)> = nt
        .iter()
        .filter(|r| r.k == k_mid)
        .map(|r| (r.m as f64, r.coupling))
        .collect();
    let label_n = per_seed_n(1000, |r| r.label_mismatch);
    let approx_n = per_seed_n(1000, |r| r.approximation);
    let text = format!(
        "Measured rates (log-log slopes): label mismatch in n at k = 1000: {}; approximation in n: {}; early stopping in k at n = {n_mid}: {:.2} (first two k: {:.2}); label mismatch in k at n = {n_mid}: {:.2}; coupling in m at k = {k_mid}: {:.2}. The standard rates for kernel GD (RWY 2014; the paper's bound) are: label mismatch (variance) ∝ sqrt(effective dimension(k)/n), so −0.5 in n at fixed k and growing in k; early-stopping bias ≤ ‖f‖_H/sqrt(2eηk) for f in the RKHS, so at most −0.5 in k; coupling ∝ m^(−1/2) at fixed k.",
        interval(label_n),
        interval(approx_n),
        loglog_slope(&stop_k),
        loglog_slope(&stop_k[..2]),
        loglog_slope(&label_k),
        if coup_m.len() > 1 {
            loglog_slope(&coup_m)
        } else {
            f64::NAN
        },
    );
    let json = serde_json::json!({"label_mismatch_in_n": label_n, "approximation_in_n": approx_n, "early_stopping_in_k": loglog_slope(&stop_k), "label_mismatch_in_k": loglog_slope(&label_k), "coupling_in_m": if coup_m.len() > 1 { loglog_slope(&coup_m) } else { f64::NAN }});
    (text, json)
}

fn decomposition_plot(out: &Path, kt: &[KernelTerms], ns: &[usize], ks: &[usize]) -> Result<()> {
    let n_mid = ns[ns.len() / 2];
    let terms: [Term; 4] = [
        ("label mismatch", |r| r.label_mismatch),
        ("early stopping", |r| r.early_stopping),
        ("approximation", |r| r.approximation),
        ("total", |r| r.total),
    ];
    let series = terms
        .iter()
        .map(|(name, f)| {
            line(
                *name,
                ks.iter()
                    .map(|&k| (k as f64, term_mean(kt, n_mid, k, *f)))
                    .collect(),
            )
        })
        .collect();
    plot(
        out,
        "ntk_decomposition.svg",
        &format!("Error terms against GD steps (n = {n_mid})"),
        "GD steps k",
        "RMS over test triples",
        series,
    )
}

fn sampling_section(md: &mut String, quick: bool) -> Result<serde_json::Value> {
    let n_s = if quick { 400 } else { 2000 };
    let hold = Stop::Holdout { fraction: 0.2 };
    let samp = Stop::Sampling { fraction: 0.2 };
    let runs: Vec<(&str, &str, SamplingResult)> = vec![
        (
            "t ~ U[t₀, T] (paper)",
            "holdout",
            sampling_check(n_s, 5, TimeSampling::Uniform, hold)?,
        ),
        (
            "ln t ~ U[ln t₀, ln T]",
            "holdout",
            sampling_check(n_s, 5, TimeSampling::LogUniform, hold)?,
        ),
        (
            "t ~ U[t₀, T] (paper)",
            "sampling",
            sampling_check(n_s, 5, TimeSampling::Uniform, samp)?,
        ),
    ];
    let (floor, nll_true) = (runs[0].2.floor, runs[0].2.nll_true);
    let _ = writeln!(
        md,
        "## 5. Sampling from the fitted estimator\n\n2-D mixture ½N(±(2, 2), 0.25 I), {n_s} DSM triples over t ∈ [0.01, 3] (seed 5), kernel estimator, Heun with 32 levels over its σ range, 2 000 samples, against the true mixture (two-sample sliced-W2 floor {floor:.4}; mean NLL of true samples {nll_true:.3}).\n\n| time sampling | --stop | k | sliced W2 ↓ | mean NLL (true: {nll_true:.3}) |\n|---|---|---:|---:|---:|"
    );
    for (times, stop, r) in &runs {
        let _ = writeln!(
            md,
            "| {times} | {stop} | {} | **{:.4}** | {:.3} |",
            r.k, r.sliced_w2, r.nll
        );
    }
    let json: Vec<_> = runs
        .iter()
        .map(|(t, s, r)| serde_json::json!({"times": t, "stop": s, "result": r}))
        .collect();
    Ok(serde_json::json!(json))
}

fn sweep_section(md: &mut String, quick: bool) -> Result<serde_json::Value> {
    let (n, seeds): (usize, Vec<u64>) = if quick {
        (400, vec![0])
    } else {
        (2000, vec![0, 1, 2])
    };
    let stops = [
        ("holdout", Stop::Holdout { fraction: 0.2 }),
        ("sampling", Stop::Sampling { fraction: 0.2 }),
        ("k=20000", Stop::Steps(20_000)),
        ("k=200000", Stop::Steps(200_000)),
        ("k=2000000", Stop::Steps(2_000_000)),
        ("ridge=1e-6", Stop::Ridge(1e-6)),
    ];
    let rows: Vec<SweepRow> = stopping_sweep(n, &seeds, &stops)?;
    let _ = writeln!(
        md,
        "## Stopping for sampling (1-D Gaussian)\n\nN(1, 0.25), {n} DSM triples over t ∈ [0.01, 3], seeds {seeds:?}; the test MSE against f* is the paper's criterion (t ~ U[t₀, T], 1 000 test triples); the samples are 2 000 Heun draws (32 levels). Mean over seeds, with the range over seeds in brackets.\n\n| --stop | k | test MSE vs f* | sample mean (true 1) | sample std (true 0.5) |\n|---|---:|---:|---:|---:|"
    );
    for (name, _) in &stops {
        let sel: Vec<&SweepRow> = rows.iter().filter(|r| r.stop == *name).collect();
        let stat = |f: fn(&SweepRow) -> f64| {
            let v: Vec<f64> = sel.iter().map(|r| f(r)).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &x| {
                (a.0.min(x), a.1.max(x))
            });
            (m, lo, hi)
        };
        let f = |v: (f64, f64, f64), p: usize| format!("{:.p$} [{:.p$}, {:.p$}]", v.0, v.1, v.2);
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} |",
            f(stat(|r| r.k as f64), 0),
            f(stat(|r| r.mse), 4),
            f(stat(|r| r.mean), 3),
            f(stat(|r| r.std), 3)
        );
    }
    Ok(serde_json::json!(rows))
}

/// Run everything and write `ntk.md`, `ntk.json` and the plots under `out`.
pub fn run_all(out: &Path, quick: bool) -> Result<String> {
    std::fs::create_dir_all(out).map_err(|e| io(score_core::ScoreError::io(out, e)))?;
    let mut md = String::new();
    let width = width_section(&mut md, out, quick)?;
    let coupling = coupling_section(&mut md, out, quick)?;
    let rates = rates_section(&mut md, out, quick)?;
    let decomposition = decomposition_section(&mut md, out, quick)?;
    let sampling = sampling_section(&mut md, quick)?;
    let sweep = sweep_section(&mut md, quick)?;
    let _ = writeln!(
        md,
        "Plots: `ntk_width.svg`, `ntk_coupling.svg`, `ntk_rates.svg`, `ntk_decomposition.svg`."
    );
    let json = serde_json::json!({"width": width, "coupling": coupling, "rates": rates, "decomposition": decomposition, "sampling": sampling, "stopping_sweep": sweep});
    score_core::fs::write_atomic(
        &out.join("ntk.json"),
        serde_json::to_string_pretty(&json)
            .expect("serialises")
            .as_bytes(),
    )
    .map_err(io)?;
    score_core::fs::write_atomic(&out.join("ntk.md"), md.as_bytes()).map_err(io)?;
    Ok(md)
}

/// One unseen 1-D Gaussian of [`variance_restoration`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct VarianceCase {
    /// The Gaussian's mean.
    pub mean: f64,
    /// Its standard deviation.
    pub std: f64,
    /// Sample std ÷ `std` with `--stop sampling` (CLI defaults: k_max 1e5 extended
    /// while the criterion still falls, 2 000 triples, t ∈ [0.01, 3]).
    pub ratio_sampling: f64,
    /// The same with `--stop holdout`.
    pub ratio_holdout: f64,
    /// The k `--stop sampling` chose, and the largest k it searched.
    pub k_sampling: (usize, usize),
    /// Sample mean minus `mean`, with `--stop sampling`, in units of `std`.
    pub mean_error: f64,
}

/// How far `--stop sampling` restores the variance on `cases` unseen 1-D Gaussians
/// (mean in [−2, 2], std in [0.3, 1], drawn from `seed`): per case, 2 000 data rows,
/// 2 000 triples, the kernel fit with each stop, 2 000 Heun samples on 32 levels (the
/// CLI's defaults), sample std against the truth. `on_case` sees each case when done.
pub fn variance_restoration(
    cases: usize,
    rows: usize,
    seed: u64,
    mut on_case: impl FnMut(&VarianceCase),
) -> Result<Vec<VarianceCase>> {
    use ntk_theory::estimator::KernelEstimator;
    use ntk_theory::kernels::Kernel;
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(cases);
    for c in 0..cases {
        let (mean, std): (f64, f64) = (rng.random_range(-2.0..2.0), rng.random_range(0.3..1.0));
        let data: Vec<f64> = (0..rows)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                mean + std * z
            })
            .collect();
        let data = score_core::array::rows_of(data, 1);
        let tr = ntk_theory::dsm::Triples::from_data(data.view(), rows, 0.01, 3.0, seed + c as u64);
        let fit = |stop| KernelEstimator::fit(&tr, Kernel::Ntk1, 1.0, stop, 100_000, (0.01, 3.0));
        let samp = fit(Stop::Sampling { fraction: 0.2 })?;
        let hold = fit(Stop::Holdout { fraction: 0.2 })?;
        let (xs_samp, xs_hold) = (samp.sample(2000, 32, seed)?, hold.sample(2000, 32, seed)?);
        let (m, s_samp) = moments(&score_core::array::row_major(xs_samp.view()));
        let (_, s_hold) = moments(&score_core::array::row_major(xs_hold.view()));
        let case = VarianceCase {
            mean,
            std,
            ratio_sampling: s_samp / std,
            ratio_holdout: s_hold / std,
            k_sampling: (samp.steps, samp.searched_to),
            mean_error: (m - mean) / std,
        };
        on_case(&case);
        out.push(case);
    }
    Ok(out)
}

fn moments(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    (
        m,
        (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// [`variance_restoration`]'s table and summary as markdown.
pub fn variance_markdown(cases: &[VarianceCase], seed: u64) -> String {
    let mut md = String::from(
        "| case | mean | std | sampled std ÷ std, `--stop sampling` | k chosen (searched to) | mean error ÷ std | sampled std ÷ std, `--stop holdout` |\n|---|---|---|---|---|---|---|\n",
    );
    for (i, c) in cases.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {i} | {:.3} | {:.3} | {:.3} | {} ({}) | {:+.3} | {:.3} |",
            c.mean,
            c.std,
            c.ratio_sampling,
            c.k_sampling.0,
            c.k_sampling.1,
            c.mean_error,
            c.ratio_holdout
        );
    }
    let r: Vec<f64> = cases.iter().map(|c| c.ratio_sampling).collect();
    let h: Vec<f64> = cases.iter().map(|c| c.ratio_holdout).collect();
    let within = r.iter().filter(|v| (**v - 1.0).abs() <= 0.1).count();
    let (lo, hi) = r
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let _ = writeln!(
        md,
        "\n{} cases (seed {seed}): sampled std ÷ true std with `--stop sampling` {:.3} on average (range {lo:.3}–{hi:.3}; {within} of {} within 10 %), with `--stop holdout` {:.3}.",
        cases.len(),
        r.iter().sum::<f64>() / r.len().max(1) as f64,
        r.len(),
        h.iter().sum::<f64>() / h.len().max(1) as f64,
    );
    md
}
