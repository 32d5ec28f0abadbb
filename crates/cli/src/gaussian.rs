//! `scorelab gaussian …`: fit, solve, sample and the explained-variance analysis.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use gaussian_score::{GaussianScore, MixtureScore, ScoreModel};
use score_core::limits::ensure_values_fit;
use score_core::samplers::{SampleContext, Sampler};
use score_core::sigmas::GridKind;
use score_core::tensor::{from_f64, to_vec_f32};
use score_io::images::ImageDataset;
use score_io::npy::{read_npy_finite, write_npy_f32};
use score_train::pipeline;

use crate::common::{Common, SamplerOpts, device, emit, ensure_not_input, sampler_from};

#[derive(Subcommand)]
pub enum GaussianCmd {
    /// Fit a Gaussian (or, with --components, a Gaussian mixture) to data.
    Fit(FitArgs),
    /// The closed-form PF-ODE solution x(σ_end) from x = Z at σ_start.
    Solve(SolveArgs),
    /// Numerical sampling with the exact Gaussian / mixture denoiser.
    Sample(GSampleArgs),
    /// Explained variance of a trained network's score and denoiser against the Gaussian,
    /// a K-component mixture and the delta mixture, per σ: table, JSON and SVG plot.
    Ev(EvArgs),
}

#[derive(Args)]
pub struct FitArgs {
    /// A `.npy` file [n, …] or `fashion-mnist-demo` (the demo's 9 000 training images).
    #[arg(long)]
    data: String,
    /// Keep the top r eigenpairs (default: full rank).
    #[arg(long)]
    rank: Option<usize>,
    /// Fit a mixture of K components (k-means + per-cluster covariance).
    #[arg(long)]
    components: Option<usize>,
    /// Use the randomized top-r eigensolver (needs --rank; for large d).
    #[arg(long)]
    randomized: bool,
    /// Output model file (safetensors).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SolveArgs {
    /// A Gaussian model from `scorelab gaussian fit`.
    #[arg(long)]
    model: PathBuf,
    /// Start states x(σ_start), `.npy` [n, …] (states, not unit noise: `gaussian
    /// sample --noise` takes unit noise).
    #[arg(long = "x-start")]
    x_start: Option<PathBuf>,
    /// The old name of --x-start, refused with a pointer to it (it meant a state here
    /// and unit noise in `gaussian sample`).
    #[arg(long, hide = true)]
    noise: Option<PathBuf>,
    /// σ at which `--x-start` is given.
    #[arg(long)]
    sigma_start: f64,
    /// σ to solve to.
    #[arg(long)]
    sigma_end: f64,
    /// Output `.npy`.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct GSampleArgs {
    /// A model from `scorelab gaussian fit`.
    #[arg(long)]
    model: PathBuf,
    /// euler, heun, dpmpp-2m, euler-ancestral, ddim, dpmpp-2m-sde, dpmpp-3m-sde or unipc.
    #[arg(long, default_value = "heun")]
    sampler: String,
    #[command(flatten)]
    sampler_opts: SamplerOpts,
    /// σ levels.
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// Unit-Gaussian start noise `.npy` [n, …] (scaled by σ_max = 80).
    #[arg(long)]
    noise: PathBuf,
    /// Output `.npy`.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct EvArgs {
    /// A UNet checkpoint (default: the shipped demo checkpoint).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Data set: `fashion-mnist-demo` (train = the demo's 9 000 images, held out = 1 000),
    /// or the checkpoint's own data: a folder of PNG/JPEG images or an image .npy
    /// (its last tenth held out).
    #[arg(long, default_value = "fashion-mnist-demo")]
    data: String,
    /// Noise levels.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.02,0.05,0.1,0.2,0.5,1,2,5,10,20,50,80"
    )]
    sigmas: Vec<f64>,
    /// Mixture sizes to compare (0 = none).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    components: Vec<usize>,
    /// Probe images per probe set.
    #[arg(long, default_value_t = 64)]
    probes: usize,
    /// Output folder: ev.json, ev.md, ev_score.svg, ev_denoiser.svg.
    #[arg(long, default_value = "out/ev")]
    out: PathBuf,
}

fn load_rows(data: &str) -> Result<(Vec<f64>, usize, Vec<usize>)> {
    if data == "fashion-mnist-demo" {
        let (train, _) = pipeline::demo_split()?;
        let [c, h, w] = train.image_shape;
        return Ok((train.rows_f64(), c * h * w, vec![c, h, w]));
    }
    let path = Path::new(data);
    let arr = read_npy_finite(path)?;
    let (n, d) = arr.as_matrix();
    if arr.shape.len() < 2 || n == 0 || d == 0 {
        bail!(
            "{data}: shape {:?} is not [n, …] with n ≥ 1 rows of at least one value",
            arr.shape
        );
    }
    // The fit holds d × d covariances and their eigendecomposition (float64).
    ensure_values_fit(
        "--data (d × d covariance)",
        (d as u128).pow(2),
        8 * 4,
        "reduce the dimension",
    )?;
    Ok((arr.data, d, arr.shape[1..].to_vec()))
}

pub fn run(c: &Common, cmd: &GaussianCmd) -> Result<()> {
    match cmd {
        GaussianCmd::Fit(a) => cmd_fit(c, a)?,
        GaussianCmd::Solve(a) => cmd_solve(c, a)?,
        GaussianCmd::Sample(a) => cmd_sample(c, a)?,
        GaussianCmd::Ev(a) => run_ev(c, a)?,
    }
    Ok(())
}

/// `GaussianCmd::Fit`.
fn cmd_fit(c: &Common, a: &FitArgs) -> Result<()> {
    ensure_not_input(&a.out, "--out", &[(Path::new(&a.data), "--data")])?;
    if a.components == Some(0) {
        bail!("--components 0: a mixture needs at least one component (1 fits one Gaussian)");
    }
    let (rows, d, _) = load_rows(&a.data)?;
    let rows = score_core::array::rows_of(rows, d);
    let rows = rows.view();
    let t0 = std::time::Instant::now();
    let model = match (a.components, a.randomized) {
        (Some(k), _) if k > 1 => ScoreModel::Mixture(MixtureScore::fit(rows, k, a.rank, c.seed())?),
        (_, true) => {
            let r = a.rank.context("--randomized needs --rank")?;
            ScoreModel::Gaussian(GaussianScore::fit_randomized(rows, r, 10, 3, c.seed())?)
        }
        _ => ScoreModel::Gaussian(GaussianScore::fit(rows, a.rank)?),
    };
    model.save(&a.out)?;
    let secs = t0.elapsed().as_secs_f64();
    let top: Vec<f64> = match &model {
        ScoreModel::Gaussian(g) => g.eigvals.iter().take(5).copied().collect(),
        ScoreModel::Mixture(m) => m.weights.clone(),
    };
    emit(
        c.json,
        serde_json::json!({"model": a.out, "kind": model.describe(), "n": rows.len() / d, "dim": d, "seconds": secs, "head": top}),
        || {
            outln!(
                "{} fitted to {} points in {secs:.2} s -> {}",
                model.describe(),
                rows.len() / d,
                a.out.display()
            );
        },
    );
    Ok(())
}

/// `GaussianCmd::Solve`.
fn cmd_solve(c: &Common, a: &SolveArgs) -> Result<()> {
    let start = [(&a.x_start, "--x-start"), (&a.noise, "--noise")];
    let mut inputs: Vec<_> = start
        .iter()
        .filter_map(|(p, f)| Some((p.as_deref()?, *f)))
        .collect();
    inputs.push((&a.model, "--model"));
    ensure_not_input(&a.out, "--out", &inputs)?;
    let model = ScoreModel::load(&a.model)?;
    let g = model
        .gaussian()
        .with_context(|| format!("--model {}", a.model.display()))?;
    let x_start = match (&a.x_start, &a.noise) {
        (Some(x), None) => x,
        (_, Some(_)) => bail!(
            "gaussian solve --noise: renamed --x-start (the state x(σ_start); unit noise scaled by σ_max is `gaussian sample --noise`)"
        ),
        (None, None) => {
            bail!("gaussian solve: --x-start FILE.npy (the states at σ_start) is required")
        }
    };
    let arr = read_npy_finite(x_start)?;
    arr.rows_of(x_start, g.dim())?;
    let x = ndarray::ArrayView2::from_shape((arr.data.len() / g.dim(), g.dim()), &arr.data)?;
    let y = g.pf_solution(x, a.sigma_start, a.sigma_end);
    let v: Vec<f32> = y.iter().map(|&x| x as f32).collect();
    write_npy_f32(&a.out, &arr.shape, &v)?;
    emit(
        c.json,
        serde_json::json!({"out": a.out, "n": arr.data.len() / g.dim(), "sigma_start": a.sigma_start, "sigma_end": a.sigma_end}),
        || {
            outln!(
                "solved {} points from σ = {} to σ = {} -> {}",
                arr.data.len() / g.dim(),
                a.sigma_start,
                a.sigma_end,
                a.out.display()
            )
        },
    );
    Ok(())
}

/// `GaussianCmd::Sample`.
fn cmd_sample(c: &Common, a: &GSampleArgs) -> Result<()> {
    let mut inputs = vec![(a.model.as_path(), "--model"), (&a.noise, "--noise")];
    inputs.extend(a.sampler_opts.ems_path().map(|p| (p, "--ems")));
    ensure_not_input(&a.out, "--out", &inputs)?;
    let dev = device(&c.device)?;
    let model = ScoreModel::load(&a.model)?;
    let arr = read_npy_finite(&a.noise)?;
    let d = model.dim();
    let n = arr.rows_of(&a.noise, d)?;
    let sampler = sampler_from(&a.sampler, c.seed(), &a.sampler_opts)?;
    let sigmas = GridKind::Karras.build(a.steps, 0.002, 80.0)?;
    if let (Sampler::DpmSolverV3(v3), Some(ems)) = (&sampler, a.sampler_opts.ems_path()) {
        v3.stats
            .check_use(ems, &score_core::fs::file_digest(&a.model)?, &sigmas)?;
    }
    let x = from_f64(
        &arr.data.iter().map(|v| v * sigmas[0]).collect::<Vec<_>>(),
        [n, d],
        &dev,
    );
    let out = sampler.sample(&model, &sigmas, x, &mut SampleContext::new())?;
    let v = to_vec_f32(out.x)?;
    write_npy_f32(&a.out, &arr.shape, &v)?;
    emit(
        c.json,
        serde_json::json!({"out": a.out, "n": n, "nfe": out.nfe, "sampler": sampler.name()}),
        || {
            outln!(
                "{n} samples with {} ({} NFE) -> {}",
                sampler.name(),
                out.nfe,
                a.out.display()
            )
        },
    );
    Ok(())
}

/// The (training, held-out) images of `gaussian ev`: the demo's split, or the user's
/// data (a folder or an image .npy) with its last tenth held out.
fn ev_data(data: &str) -> Result<Option<(ImageDataset, ImageDataset)>> {
    if data == "fashion-mnist-demo" {
        return Ok(None);
    }
    let all = crate::common::load_images(data, None)?;
    let n = all.num_images();
    let held = n / 10;
    if held < 2 {
        bail!("--data {data}: {n} images; the EV analysis holds out a tenth and needs at least 20");
    }
    let idx: Vec<usize> = (0..n).collect();
    Ok(Some((
        all.select(&idx[..n - held]),
        all.select(&idx[n - held..]),
    )))
}

fn run_ev(c: &Common, a: &EvArgs) -> Result<()> {
    let data = ev_data(&a.data)?;
    let dev = device(&c.device)?;
    let ck = a
        .checkpoint
        .clone()
        .unwrap_or_else(pipeline::shipped_checkpoint);
    eprintln!(
        "fitting the Gaussian, mixtures {:?} and the delta mixture; probing {} noise levels…",
        a.components,
        a.sigmas.len()
    );
    let rows = scorelab_experiments::gaussian::ev_study(
        &ck,
        data,
        &a.sigmas,
        &a.components,
        a.probes,
        c.seed(),
        &a.out,
        &dev,
    )?;
    let md = std::fs::read_to_string(a.out.join("ev.md"))
        .with_context(|| format!("reading {}", a.out.join("ev.md").display()))?;
    emit(
        c.json,
        serde_json::json!({"checkpoint": ck, "rows": rows, "out": a.out}),
        || {
            outln!("{md}");
            outln!("written to {}", a.out.display());
        },
    );
    Ok(())
}
