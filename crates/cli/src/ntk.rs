//! `scorelab ntk …`: Gram matrices, fitting the kernel score estimator, sampling from it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ntk_theory::dsm::Triples;
use ntk_theory::estimator::{KernelEstimator, Stop};
use ntk_theory::kernels::Kernel;
use score_core::limits::ensure_values_fit;
use score_core::samplers::SampleContext;
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{from_f64, randn, stream_rng, to_vec_f32};
use score_io::npy::{read_npy_finite, write_npy_f32, write_npy_f64};

use crate::common::{Common, SamplerOpts, device, emit, ensure_not_input, sampler_from};

#[derive(Subcommand)]
pub enum NtkCmd {
    /// The Gram matrix of the rows of a `.npy` file.
    Gram(GramArgs),
    /// Fit the kernel score estimator to data by kernel gradient descent.
    Fit(FitArgs),
    /// Sample from a fitted estimator with a score-core sampler.
    Sample(SampleArgs),
}

#[derive(Args)]
pub struct GramArgs {
    /// Points [n, p].
    #[arg(long)]
    inputs: PathBuf,
    /// ntk1, ntk2, arccos0 or arccos1.
    #[arg(long, default_value = "ntk1")]
    kernel: String,
    /// Output `.npy` [n, n].
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct FitArgs {
    /// Data X₀ [N, d].
    #[arg(long)]
    data: PathBuf,
    /// Number of DSM triples (one noise draw each).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// ntk1, ntk2, arccos0 or arccos1.
    #[arg(long, default_value = "ntk1")]
    kernel: String,
    /// Train the finite-width network of this width by GD instead (with --stop k=K).
    #[arg(long)]
    width: Option<usize>,
    /// holdout (smallest hold-out score error), sampling (the k whose samples come
    /// closest to held-out data: for sampling from the fit), rwy (needs --sigma-hat),
    /// k=K, or ridge=γ.
    #[arg(long, default_value = "holdout")]
    stop: String,
    /// The largest GD step count the stopping rules search (a geometric grid 1 … K).
    #[arg(long, default_value_t = 100_000)]
    k_max: usize,
    /// Label-noise level for --stop rwy.
    #[arg(long)]
    sigma_hat: Option<f64>,
    /// Time range [t₀, T] of the OU process.
    #[arg(long, default_value_t = 0.01)]
    t0: f64,
    /// See --t0.
    #[arg(long, default_value_t = 3.0)]
    t_max: f64,
    /// Output model (safetensors).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SampleArgs {
    /// A model from `scorelab ntk fit`.
    #[arg(long)]
    model: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// euler, heun, dpmpp-2m, euler-ancestral, ddim, dpmpp-2m-sde, dpmpp-3m-sde or unipc.
    #[arg(long, default_value = "heun")]
    sampler: String,
    #[command(flatten)]
    sampler_opts: SamplerOpts,
    /// σ levels over the model's fitted range.
    #[arg(long, default_value_t = 32)]
    steps: usize,
    /// Output `.npy`.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(c: &Common, cmd: &NtkCmd) -> Result<()> {
    match cmd {
        NtkCmd::Gram(a) => cmd_gram(c, a)?,
        NtkCmd::Fit(a) => cmd_fit(c, a)?,
        NtkCmd::Sample(a) => cmd_sample(c, a)?,
    }
    Ok(())
}

/// `NtkCmd::Gram`.
fn cmd_gram(c: &Common, a: &GramArgs) -> Result<()> {
    ensure_not_input(&a.out, "--out", &[(&a.inputs, "--inputs")])?;
    let arr = read_npy_finite(&a.inputs)?;
    let (n, p) = arr.matrix(&a.inputs)?;
    ensure_values_fit("--inputs (n × n Gram matrix)", (n as u128).pow(2), 8, "")?;
    let k: Kernel = a.kernel.parse()?;
    let h = k.gram(ndarray::ArrayView2::from_shape((n, p), &arr.data)?)?;
    write_npy_f64(&a.out, &[n, n], &score_core::array::row_major(h.view()))?;
    emit(
        c.json,
        serde_json::json!({"out": a.out, "n": n, "p": p}),
        || outln!("{n} × {n} Gram matrix -> {}", a.out.display()),
    );
    Ok(())
}

/// `NtkCmd::Fit`.
fn cmd_fit(c: &Common, a: &FitArgs) -> Result<()> {
    ensure_not_input(&a.out, "--out", &[(&a.data, "--data")])?;
    check_fit_flags(a)?;
    let arr = read_npy_finite(&a.data)?;
    let (_, d) = arr.matrix(&a.data)?;
    if a.n == 0 {
        bail!("--n: need at least one training triple");
    }
    // The kernel fit holds the n × n Gram matrix and its eigendecomposition
    // (about four n × n float64 arrays); the network fit n × width activations.
    match a.width {
        None => ensure_values_fit("--n", (a.n as u128).pow(2), 32, "use a smaller --n")?,
        Some(m) => ensure_values_fit(
            "--n × --width",
            a.n as u128 * m.max(d) as u128,
            64,
            "use a smaller --n or --width",
        )?,
    }
    let stop = stop_of(a)?;
    let data = ndarray::ArrayView2::from_shape((arr.data.len() / d, d), &arr.data)?;
    let tr = Triples::from_data(data, a.n, a.t0, a.t_max, c.seed());
    let t0 = std::time::Instant::now();
    if let Some(m) = a.width {
        let Stop::Steps(k) = stop else {
            bail!("--width trains by GD: give the step count with --stop k=K")
        };
        let est =
            ntk_theory::estimator::NetworkEstimator::fit(&tr, m, k, (a.t0, a.t_max), c.seed())?;
        est.save(&a.out)?;
        let mse = est.mse_to(tr.z.view(), tr.y.view());
        let secs = t0.elapsed().as_secs_f64();
        emit(
            c.json,
            serde_json::json!({"out": a.out, "n": a.n, "dim": d, "width": m, "steps": k, "train_mse": mse, "seconds": secs}),
            || {
                outln!(
                    "width-{m} network, {k} GD steps on {} triples (train MSE {mse:.4}), {secs:.1} s -> {}",
                    a.n,
                    a.out.display()
                )
            },
        );
        return Ok(());
    }
    let est = KernelEstimator::fit(&tr, a.kernel.parse()?, 1.0, stop, a.k_max, (a.t0, a.t_max))?;
    est.save(&a.out)?;
    report_kernel_fit(c, a, &est, d, t0.elapsed().as_secs_f64());
    Ok(())
}

/// The fit's flags that could be taken in a way the user did not mean: a time range
/// that is empty or reversed, a search bound of 0 (the search would start at 1 and
/// extend past it), a label-noise level that only `--stop rwy` reads.
fn check_fit_flags(a: &FitArgs) -> Result<()> {
    if !(a.t0 >= 0.0 && a.t0 < a.t_max && a.t_max.is_finite()) {
        bail!(
            "--t0/--t-max: need 0 ≤ t₀ < T < inf, got t₀ = {}, T = {}",
            a.t0,
            a.t_max
        );
    }
    if a.k_max == 0 {
        bail!("--k-max: must be at least 1");
    }
    if a.sigma_hat.is_some() && a.stop != "rwy" {
        bail!(
            "--sigma-hat: only --stop rwy reads it (--stop is {})",
            a.stop
        );
    }
    Ok(())
}

/// `--stop`: holdout, sampling, rwy, k=K or ridge=γ.
fn stop_of(a: &FitArgs) -> Result<Stop> {
    Ok(match a.stop.as_str() {
        "holdout" => Stop::Holdout { fraction: 0.2 },
        "sampling" => Stop::Sampling { fraction: 0.2 },
        "rwy" => Stop::Rwy {
            sigma_hat: a.sigma_hat.context("--stop rwy needs --sigma-hat")?,
        },
        s if s.starts_with("k=") => {
            Stop::Steps(s[2..].parse().with_context(|| format!("--stop: '{s}'"))?)
        }
        s if s.starts_with("ridge=") => {
            Stop::Ridge(s[6..].parse().with_context(|| format!("--stop: '{s}'"))?)
        }
        s => bail!("--stop: '{s}' is none of holdout, sampling, rwy, k=K, ridge=γ"),
    })
}

/// What a kernel fit says: its steps, how far the rule searched, and a warning when it
/// stopped at the end of its search.
fn report_kernel_fit(c: &Common, a: &FitArgs, est: &KernelEstimator, d: usize, secs: f64) {
    let at_end = est.searched_to > 0 && est.steps == est.searched_to;
    if at_end {
        eprintln!(
            "warning: the stopping rule chose {} GD steps, the largest it searched (--k-max {}, extended to {}; the grid searches stop at {}): its criterion had not turned",
            est.steps,
            a.k_max,
            est.searched_to,
            ntk_theory::estimator::K_LIMIT
        );
    }
    emit(
        c.json,
        serde_json::json!({"out": a.out, "n": a.n, "dim": d, "steps": est.steps, "searched_to": est.searched_to, "stopped_at_search_end": at_end, "seconds": secs}),
        || {
            outln!(
                "kernel estimator on {} triples (d = {d}), {} GD steps (searched up to {}), {secs:.1} s -> {}",
                a.n,
                est.steps,
                est.searched_to,
                a.out.display()
            )
        },
    );
}

/// `NtkCmd::Sample`.
fn cmd_sample(c: &Common, a: &SampleArgs) -> Result<()> {
    let mut inputs = vec![(a.model.as_path(), "--model")];
    inputs.extend(a.sampler_opts.ems_path().map(|p| (p, "--ems")));
    ensure_not_input(&a.out, "--out", &inputs)?;
    let dev = device(&c.device)?;
    let est = KernelEstimator::load(&a.model)?;
    let (smin, smax) = est.sigma_range();
    let sigmas = karras_sigmas(a.steps, smin, smax, 7.0)?;
    let sampler = sampler_from(&a.sampler, c.seed(), &a.sampler_opts)?;
    if a.n == 0 {
        bail!("--n: need at least one sample");
    }
    let count = score_core::limits::element_count("--n", &[a.n, est.d()])?;
    // The state, the denoised estimate and the sampler's stages, in float64.
    ensure_values_fit("--n", count as u128, 8 * 8, "use a smaller --n")?;
    let z = to_vec_f32(randn(
        [a.n * est.d()],
        &mut stream_rng(c.seed(), 0x4e54, 0),
        &dev,
    ))?;
    let x = from_f64(
        &z.iter().map(|v| *v as f64 * smax).collect::<Vec<_>>(),
        [a.n, est.d()],
        &dev,
    );
    let out = sampler.sample(&est, &sigmas, x, &mut SampleContext::new())?;
    let v = to_vec_f32(out.x)?;
    write_npy_f32(&a.out, &[a.n, est.d()], &v)?;
    emit(
        c.json,
        serde_json::json!({"out": a.out, "n": a.n, "nfe": out.nfe}),
        || outln!("{} samples ({} NFE) -> {}", a.n, out.nfe, a.out.display()),
    );
    Ok(())
}
