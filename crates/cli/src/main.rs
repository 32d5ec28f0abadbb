//! `scorelab`: train EDM denoisers, sample from them, inspect σ grids and run the demo.
//!
//! Every subcommand takes `--seed`, `--device flex|wgpu|cuda` and `--json` (print the
//! numbers as one JSON object on stdout; progress goes to stderr).

/// `println!` that ends the program quietly when stdout is closed (`scorelab … | head`)
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

mod distill_cmd;
mod fid;
mod gaussian;
mod musicscore;
mod ntk;
mod scoreaug_cmd;
mod textscore_cmd;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};
use score_core::fs::write_atomic_all;
use score_core::samplers::{SampleContext, Sampler};
use score_core::sigmas::GridKind;
use score_core::tensor::{from_f64, randn, stream_rng, to_vec_f32};
use score_io::image::image_grid_png;
use score_io::images::{ImageDataset, Split};
use score_io::npy::{npy_f32_bytes, read_npy_finite};
use score_nn::Preconditioned;
use score_nn::mlp::MlpConfig;
use score_train::checkpoint::CheckpointFile;
use score_train::pipeline::{self, LoadedModel, ModelSpec};
use score_train::train::{ImageData, TrainConfig, TrainOutput, VectorData, train};

#[derive(Parser)]
#[command(
    name = "scorelab",
    version,
    about = "Score-based diffusion research toolkit (EDM formulation) on burn",
    long_about = "Score-based diffusion research toolkit (EDM formulation) on burn.\n\n\
        Start with `scorelab demo`: it samples the shipped Fashion-MNIST UNet and prints metrics.\n\
        `scorelab demo --train` trains one from scratch first (minutes on a laptop CPU)."
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Seed of every random draw (initial noise, training batches, weights) [default: 0;
    /// on `train --resume`, the checkpoint's].
    #[arg(long = "seed", global = true)]
    pub(crate) seed_arg: Option<u64>,
    /// Compute device: flex (CPU, default), wgpu or cuda (builds with `--features wgpu|cuda`).
    #[arg(long, global = true, default_value = "flex")]
    pub(crate) device: String,
    /// Print results as one JSON object on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Worker threads of the CPU backend and data loading (rayon's global pool)
    /// [default: one per core, or $RAYON_NUM_THREADS].
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
}

// Parsed once per run: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train an EDM-preconditioned denoiser (UNet on images, MLP on vectors).
    Train(TrainArgs),
    /// Sample from a checkpoint; writes samples.npy (and samples.png for images).
    Sample(SampleArgs),
    /// Print a σ grid.
    Sigmas(SigmasArgs),
    /// Closed-form Gaussian scores: fit, solve, sample, explained variance.
    #[command(subcommand)]
    Gaussian(gaussian::GaussianCmd),
    /// The NTK / kernel-regression score estimator: Gram matrices, fit, sample.
    #[command(subcommand)]
    Ntk(ntk::NtkCmd),
    /// The MusicScore dataset (or the shipped corpus in data/musicscore): stats, verify,
    /// prompts, export to imagefolder, preview.
    #[command(subcommand)]
    Musicscore(musicscore::MusicScoreCmd),
    /// The main job: sample the shipped Fashion-MNIST UNet (or train one first), write an
    /// image grid and print metrics.
    Demo(DemoArgs),
    /// Empirical model statistics of a checkpoint for `sample --sampler dpm-solver-v3`.
    Ems(EmsArgs),
    /// FID (FID Inception-v3, with a bootstrap standard error), KID and precision/recall.
    Fid(fid::FidArgs),
    /// Write the FID statistics (`mu`, `sigma`) of a set of images as `.npz`.
    FidStats(fid::FidStatsArgs),
    /// ScoreAug: measures of a trained model (equivariance, train vs held-out loss,
    /// leakage, memorisation, FID).
    #[command(subcommand)]
    Scoreaug(scoreaug_cmd::ScoreAugCmd),
    /// Distil a checkpoint into a one-step generator (plain score distillation or
    /// DisBack); `sample` then draws from OUT/generator.safetensors in one evaluation.
    Distill(distill_cmd::DistillArgs),
}

#[derive(Args)]
struct EmsArgs {
    /// Checkpoint written by `scorelab train` (EMA weights).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Data the statistics are taken over: `fashion-mnist-test` (a class-balanced
    /// subset of the shipped images) or a `.npy` file of rows.
    #[arg(long, default_value = "fashion-mnist-test")]
    data: String,
    /// Samples per λ point.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// λ points between σ_min and σ_max (4 network evaluations each).
    #[arg(long, default_value_t = 32)]
    points: usize,
    /// Smallest σ.
    #[arg(long, default_value_t = 0.002)]
    sigma_min: f64,
    /// Largest σ.
    #[arg(long, default_value_t = 80.0)]
    sigma_max: f64,
    /// Output JSON file.
    #[arg(long, default_value = "out/ems.json")]
    out: PathBuf,
}

fn cmd_ems(c: &Common, a: &EmsArgs) -> Result<()> {
    let dev = device(&c.device)?;
    if a.n < 2 || a.points < 2 {
        bail!("--n and --points: need at least 2 each");
    }
    if !(a.sigma_min > 0.0 && a.sigma_max > a.sigma_min && a.sigma_max.is_finite()) {
        bail!("--sigma-min/--sigma-max: need 0 < min < max < inf");
    }
    let (model, precond, _) = pipeline::load_model(&a.checkpoint, &dev)?;
    let t0 = Instant::now();
    let est = |stats: Result<
        score_core::samplers::dpm_solver_v3::ModelStatistics,
        score_core::ScoreError,
    >| { stats.map_err(anyhow::Error::from) };
    let stats = match &model {
        LoadedModel::Unet(net, [ch, h, w]) => {
            let images = load_images(&a.data, None)?.balanced_subset(a.n);
            if images.image_shape != [*ch, *h, *w] {
                bail!(
                    "--data: images of shape {:?}, the checkpoint's are {:?}",
                    images.image_shape,
                    [ch, h, w]
                );
            }
            let n = images.num_images();
            let x0 = score_core::tensor::from_f32(images.pixels, [n, *ch, *h, *w], &dev);
            let den = Preconditioned::new(net, precond);
            est(
                score_core::samplers::dpm_solver_v3::ModelStatistics::estimate(
                    &den,
                    x0,
                    a.sigma_min,
                    a.sigma_max,
                    a.points,
                    c.seed(),
                ),
            )?
        }
        LoadedModel::Mlp(net, d) => {
            let path = Path::new(&a.data);
            let arr = read_npy_finite(path)?;
            let n = arr.rows_of(path, *d)?.min(a.n);
            let x0 = from_f64(&arr.data[..n * d], [n, *d], &dev);
            let den = Preconditioned::new(net, precond);
            est(
                score_core::samplers::dpm_solver_v3::ModelStatistics::estimate(
                    &den,
                    x0,
                    a.sigma_min,
                    a.sigma_max,
                    a.points,
                    c.seed(),
                ),
            )?
        }
    };
    stats.save(&a.out)?;
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"out": a.out, "points": a.points, "n": a.n, "dim": stats.dim, "network_evaluations": 4 * a.points, "seconds": secs}),
        || {
            outln!(
                "statistics of dimension {} at {} λ points ({} batched network evaluations) in {secs:.1} s -> {}",
                stats.dim,
                a.points,
                4 * a.points,
                a.out.display()
            )
        },
    );
    Ok(())
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: `fashion-mnist` (train split from --data-dir or Debian's package),
    /// `fashion-mnist-test` (the 10 000 images shipped in data/), or a `.npy` file of
    /// vectors [n, d] (trains the MLP) [default: fashion-mnist-test; on --resume, the
    /// checkpoint's].
    #[arg(long)]
    data: Option<String>,
    /// Folder with Fashion-MNIST IDX files (overrides the search path).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Output folder: checkpoint.safetensors, train.jsonl.
    #[arg(long, default_value = "out/train")]
    out: PathBuf,
    /// Total optimisation steps [default: 2000; on --resume, the checkpoint's total].
    #[arg(long)]
    steps: Option<usize>,
    /// Minibatch size [default: 32; fixed by the checkpoint on --resume].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate [default: 2e-3; on --resume, the checkpoint's, or this new one].
    #[arg(long)]
    lr: Option<f64>,
    /// Clip the global gradient norm to this value, 0 = off [default: off, as EDM; on
    /// --resume, the checkpoint's, or this new one].
    #[arg(long)]
    grad_clip: Option<f64>,
    /// Write a checkpoint every this many steps (and at the end) [default: 200].
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Also keep each checkpoint written, as checkpoint.step<N>.safetensors in --out
    /// (for studies over training).
    #[arg(long)]
    keep_checkpoints: bool,
    /// Decoupled weight decay; > 0 trains with AdamW [default: 0, Adam].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Adam's β₁,β₂ [default: 0.9,0.999].
    #[arg(long)]
    adam_betas: Option<String>,
    /// Learning-rate schedule after the warm-up: constant, or inverse-sqrt:REF_STEPS
    /// (EDM2's lr/sqrt(max(step/REF, 1))) [default: constant].
    #[arg(long)]
    lr_schedule: Option<String>,
    /// Split each batch into K micro-batches and accumulate their gradients (the same
    /// step in less memory) [default: 1].
    #[arg(long)]
    grad_accumulation: Option<usize>,
    /// How batches are drawn: epochs (shuffled, each image once per epoch) or
    /// replacement [default: epochs].
    #[arg(long)]
    batches: Option<String>,
    /// Conditioning: none, or class (labels of the image data set, for classifier-free
    /// guidance with `sample --guidance`) [default: none].
    #[arg(long)]
    cond: Option<String>,
    /// With --cond class: probability of dropping a sample's label [default: 0.1].
    #[arg(long)]
    label_dropout: Option<f64>,
    /// Continue from <out>/checkpoint.safetensors if it exists. --lr, --grad-clip,
    /// --lr-schedule, --grad-accumulation, --steps and --checkpoint-every may change;
    /// the network, data, batches, optimiser and seed may not.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start again in an <out> that holds a checkpoint (its checkpoint and log are
    /// replaced); without it, train refuses to overwrite a run.
    #[arg(long)]
    overwrite: bool,
    /// σ_data of the EDM preconditioning [default: the standard deviation of the
    /// training data; fixed by the checkpoint on --resume].
    #[arg(long)]
    sigma_data: Option<f64>,
    /// UNet base width, even (images only) [default: 32; fixed by the checkpoint on
    /// --resume].
    #[arg(long)]
    channels: Option<usize>,
    /// Use only the first N images (class-balanced), 0 = all [fixed by the checkpoint
    /// on --resume].
    #[arg(long)]
    subset: Option<usize>,
    /// Augmentation (images): none, nla (EDM's non-leaky augmentation), scoreaug, or
    /// nla+scoreaug [default: none; fixed by the checkpoint on --resume].
    #[arg(long)]
    augment: Option<String>,
    /// ScoreAug: probability of a non-identity transform [default: 0.5].
    #[arg(long)]
    aug_p: Option<f64>,
    /// ScoreAug: transforms to draw from [default: rot90,flip,translate,cutout,brightness].
    #[arg(long)]
    aug_transforms: Option<String>,
    /// Do not condition the network on the augmentation parameters ω (the leakage
    /// control of the ScoreAug paper).
    #[arg(long)]
    no_aug_cond: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// Checkpoint written by `scorelab train` (EMA weights are used when present).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// euler, heun, dpmpp-2m, euler-ancestral, ddim, dpmpp-2m-sde, dpmpp-3m-sde, unipc or
    /// dpm-solver-v3 (with --ems).
    #[arg(long, default_value = "heun")]
    sampler: String,
    /// Number of σ levels (Heun uses 2N − 1 evaluations).
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// σ grid: karras, vp, ve, log-uniform or linear.
    #[arg(long, default_value = "karras")]
    grid: String,
    #[command(flatten)]
    sampler_opts: SamplerOpts,
    /// karras: the grid's ρ [default: 7, EDM's].
    #[arg(long)]
    rho: Option<f64>,
    /// Class-conditional checkpoints: the class of every sample [default: classes in
    /// turn, 0, 1, …].
    #[arg(long)]
    class: Option<usize>,
    /// Classifier-free guidance scale w (1 = the conditional model, 0 = the
    /// unconditional one; class-conditional checkpoints only).
    #[arg(long, default_value_t = 1.0)]
    guidance: f64,
    /// Smallest σ of the grid [default: the grid's own, 0.002 for karras].
    #[arg(long)]
    sigma_min: Option<f64>,
    /// Largest σ of the grid [default: the grid's own, 80 for karras].
    #[arg(long)]
    sigma_max: Option<f64>,
    /// Start from this unit-Gaussian noise (.npy, shape [n, …]) instead of drawing it.
    #[arg(long)]
    noise: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "out/sample")]
    out: PathBuf,
    /// Which weights: ema (default) or raw.
    #[arg(long, default_value = "ema")]
    weights: String,
    /// Analytical teleportation: a Gaussian model (`scorelab gaussian fit`) of the
    /// training data; the first steps are replaced by its closed-form solution.
    #[arg(long)]
    teleport: Option<PathBuf>,
    /// With --teleport: skip k steps, or `auto` (see also --skip-sigma).
    #[arg(long, default_value = "auto")]
    skip: String,
    /// With --teleport: skip to the first grid level at or below this σ.
    #[arg(long)]
    skip_sigma: Option<f64>,
    /// With --skip auto: score explained-variance threshold (0.9975 = 5% relative error
    /// of the ODE velocity).
    #[arg(long, default_value_t = gaussian_score::teleport::DEFAULT_AUTO_THRESHOLD)]
    skip_threshold: f64,
    /// With --teleport: teleport and sample in VP coordinates (x_vp = x/√(1 + σ²); the VP
    /// closed form, then deterministic DDIM on VP states). Needs --sampler euler or ddim
    /// with --eta 0, which it reproduces in EDM variables.
    #[arg(long)]
    vp: bool,
}

#[derive(Args)]
struct SigmasArgs {
    /// Number of levels N (σ_N = 0 is appended).
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// karras, vp, ve, log-uniform or linear.
    #[arg(long, default_value = "karras")]
    grid: String,
    /// Smallest σ [default: the grid's own: 0.002 for karras, log-uniform and linear,
    /// 0.0105 for vp, 0.02 for ve].
    #[arg(long)]
    sigma_min: Option<f64>,
    /// Largest σ [default: the grid's own: 80, 152.2 for vp, 100 for ve].
    #[arg(long)]
    sigma_max: Option<f64>,
}

#[derive(Args)]
struct DemoArgs {
    /// Train a UNet from scratch on the shipped images first, instead of using the
    /// shipped checkpoint.
    #[arg(long)]
    train: bool,
    /// Training steps with --train.
    #[arg(long, default_value_t = 600)]
    train_steps: usize,
    /// Images to generate.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Skip FID (the Inception-v3 features take about 15 s per 64 images on 2 cores).
    #[arg(long)]
    no_fid: bool,
    /// Heun σ levels (EDM uses 18 for 32×32 images).
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Checkpoint to sample (default: the one shipped in data/checkpoints).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

impl Common {
    /// The seed: `--seed`, or 0.
    pub(crate) fn seed(&self) -> u64 {
        self.seed_arg.unwrap_or(0)
    }
}

pub(crate) fn device(name: &str) -> Result<Device> {
    Ok(score_core::device::by_name(name)?)
}

pub(crate) fn emit(json: bool, value: serde_json::Value, human: impl FnOnce()) {
    if json {
        outln!("{value}");
    } else {
        human();
    }
}

/// The sampler options every sampling command takes.
#[derive(Args, Clone, Default)]
pub(crate) struct SamplerOpts {
    /// heun: S_churn, the noise injected over the run (EDM Algorithm 2; 0 =
    /// deterministic).
    #[arg(long)]
    churn: Option<f64>,
    /// heun: churn only where σ ≥ S_tmin [default: 0].
    #[arg(long)]
    s_tmin: Option<f64>,
    /// heun: churn only where σ ≤ S_tmax [default: inf].
    #[arg(long)]
    s_tmax: Option<f64>,
    /// heun, euler-ancestral, ddim and the SDE samplers: scale of the injected noise
    /// [default: 1].
    #[arg(long)]
    s_noise: Option<f64>,
    /// euler-ancestral and ddim: the fraction of the ancestral noise (1 = ancestral, 0 =
    /// Euler) [default: 1, ddim 0]; dpmpp-2m-sde and dpmpp-3m-sde: the SDE's η (0 =
    /// the ODE solver) [default: 1].
    #[arg(long)]
    eta: Option<f64>,
    /// unipc: the predictor order p, 1 to 3 (with the corrector the order is p + 1)
    /// [default: 2].
    #[arg(long)]
    order: Option<usize>,
    /// unipc: predictor only, without the corrector UniC.
    #[arg(long)]
    no_corrector: bool,
    /// unipc: B(h) = h (bh1) instead of e^h − 1 (bh2).
    #[arg(long)]
    bh1: bool,
    /// dpmpp-3m-sde: the exact third-order coefficient 2φ₃ instead of k-diffusion's φ₃.
    #[arg(long)]
    exact_phi3: bool,
    /// dpm-solver-v3: the model statistics written by `scorelab ems`.
    #[arg(long)]
    ems: Option<PathBuf>,
}

impl SamplerOpts {
    fn dpm_solver_v3(&self) -> Result<Sampler> {
        let Some(path) = &self.ems else {
            bail!(
                "--sampler dpm-solver-v3 needs --ems FILE: compute the model statistics once with `scorelab ems --checkpoint … --out ems.json`"
            );
        };
        let given = self.churn.is_some()
            || self.s_tmin.is_some()
            || self.s_tmax.is_some()
            || self.s_noise.is_some()
            || self.eta.is_some()
            || self.no_corrector
            || self.bh1
            || self.exact_phi3;
        if given {
            bail!("dpm-solver-v3 takes --ems and --order only");
        }
        let order = self.order.unwrap_or(3);
        if !(1..=3).contains(&order) {
            bail!("--order: DPM-Solver-v3's order is 1, 2 or 3, got {order}");
        }
        let stats = score_core::samplers::dpm_solver_v3::ModelStatistics::load(path)?;
        Ok(Sampler::DpmSolverV3(Box::new(
            score_core::samplers::dpm_solver_v3::V3Sampler {
                stats,
                opts: score_core::samplers::dpm_solver_v3::V3Options { order },
            },
        )))
    }

    /// The sampler `name` with these options; an option the sampler does not take is
    /// an error naming it.
    pub(crate) fn build(&self, name: &str, seed: u64) -> Result<Sampler> {
        for (flag, v) in [
            ("--churn", self.churn),
            ("--s-tmin", self.s_tmin),
            ("--s-noise", self.s_noise),
            ("--eta", self.eta),
        ] {
            if let Some(v) = v
                && !(v >= 0.0 && v.is_finite())
            {
                bail!("{flag}: must be non-negative and finite, got {v}");
            }
        }
        if name == "dpm-solver-v3" {
            return self.dpm_solver_v3();
        }
        if self.ems.is_some() {
            bail!("--ems applies to dpm-solver-v3, not {name}");
        }
        let sampler = name.parse::<Sampler>()?.with_seed(seed);
        // Which flags the chosen sampler takes.
        let takes = |flag: &str| -> bool {
            matches!(
                (&sampler, flag),
                (
                    Sampler::Heun(_),
                    "--churn" | "--s-tmin" | "--s-tmax" | "--s-noise"
                ) | (
                    Sampler::EulerAncestral(_)
                        | Sampler::Ddim(_)
                        | Sampler::DpmppTwoMSde(_)
                        | Sampler::DpmppThreeMSde(_),
                    "--eta" | "--s-noise",
                ) | (Sampler::DpmppThreeMSde(_), "--exact-phi3")
                    | (Sampler::UniPc(_), "--order" | "--no-corrector" | "--bh1")
            )
        };
        let given = [
            ("--churn", self.churn.is_some()),
            ("--s-tmin", self.s_tmin.is_some()),
            ("--s-tmax", self.s_tmax.is_some()),
            ("--s-noise", self.s_noise.is_some()),
            ("--eta", self.eta.is_some()),
            ("--order", self.order.is_some()),
            ("--no-corrector", self.no_corrector),
            ("--bh1", self.bh1),
            ("--exact-phi3", self.exact_phi3),
        ];
        if let Some((flag, _)) = given.iter().find(|(f, g)| *g && !takes(f)) {
            bail!("{flag} does not apply to the {name} sampler");
        }
        Ok(match sampler {
            Sampler::Heun(mut o) => {
                o.s_churn = self.churn.unwrap_or(o.s_churn);
                o.s_tmin = self.s_tmin.unwrap_or(o.s_tmin);
                o.s_tmax = self.s_tmax.unwrap_or(o.s_tmax);
                o.s_noise = self.s_noise.unwrap_or(o.s_noise);
                Sampler::Heun(o)
            }
            Sampler::EulerAncestral(mut o) | Sampler::Ddim(mut o) => {
                o.eta = self.eta.unwrap_or(o.eta);
                o.s_noise = self.s_noise.unwrap_or(o.s_noise);
                if name == "ddim" {
                    Sampler::Ddim(o)
                } else {
                    Sampler::EulerAncestral(o)
                }
            }
            Sampler::DpmppTwoMSde(mut o) | Sampler::DpmppThreeMSde(mut o) => {
                o.eta = self.eta.unwrap_or(o.eta);
                o.s_noise = self.s_noise.unwrap_or(o.s_noise);
                o.exact_phi3 = self.exact_phi3;
                if name == "dpmpp-2m-sde" {
                    Sampler::DpmppTwoMSde(o)
                } else {
                    Sampler::DpmppThreeMSde(o)
                }
            }
            Sampler::UniPc(mut o) => {
                o.order = self.order.unwrap_or(o.order);
                if !(1..=3).contains(&o.order) {
                    bail!(
                        "--order: UniPC's predictor order is 1, 2 or 3, got {}",
                        o.order
                    );
                }
                o.corrector = !self.no_corrector;
                o.bh2 = !self.bh1;
                Sampler::UniPc(o)
            }
            other => other,
        })
    }
}

pub(crate) fn sampler_from(name: &str, seed: u64, opts: &SamplerOpts) -> Result<Sampler> {
    opts.build(name, seed)
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    bar_of(len, what, "steps")
}

/// A progress bar counting `unit`s.
pub(crate) fn bar_of(len: u64, what: &str, unit: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{elapsed}}  eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    b
}

pub(crate) fn load_images(name: &str, dir: Option<&Path>) -> Result<ImageDataset> {
    Ok(match name {
        "fashion-mnist" => ImageDataset::fashion_mnist(dir, Split::Train)
            .context("the Fashion-MNIST training split is not shipped: `apt-get install dataset-fashion-mnist` or pass --data-dir; `--data fashion-mnist-test` uses the shipped 10 000 images")?,
        "fashion-mnist-test" => ImageDataset::fashion_mnist(dir, Split::Test)?,
        other => bail!("--data: unknown data set '{other}'"),
    })
}

/// What `train` records of its command line in the checkpoint (`config.extra.cli`), so
/// that `--resume` can rebuild the run and refuse changes that would break it.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct RunRecord {
    data: String,
    subset: usize,
    channels: usize,
    #[serde(default = "no_cond")]
    cond: String,
    /// The augmentation objective, absent for plain denoising.
    #[serde(default)]
    augment: Option<scoreaug::Augment>,
}

/// The augmentation the flags ask for (`None` for plain denoising).
fn augment_of(a: &TrainArgs) -> Result<Option<scoreaug::Augment>> {
    let mode = scoreaug::Mode::parse(a.augment.as_deref().unwrap_or("none"))?;
    let extra = a.aug_p.is_some() || a.aug_transforms.is_some() || a.no_aug_cond;
    if mode == scoreaug::Mode::None {
        if extra {
            bail!("--aug-p, --aug-transforms and --no-aug-cond need --augment");
        }
        return Ok(None);
    }
    let kinds = match &a.aug_transforms {
        Some(t) => scoreaug::transforms::Kind::parse_list(t)?,
        None => scoreaug::transforms::Kind::ALL.to_vec(),
    };
    Ok(Some(scoreaug::Augment::new(
        mode,
        a.aug_p.unwrap_or(0.5),
        kinds,
        !a.no_aug_cond,
    )?))
}

fn no_cond() -> String {
    "none".into()
}

/// `--lr-schedule`: `constant` or `inverse-sqrt:REF_STEPS`.
fn parse_schedule(s: &str) -> Result<score_train::train::LrSchedule> {
    use score_train::train::LrSchedule;
    Ok(match s.split_once(':') {
        None if s == "constant" => LrSchedule::Constant,
        Some(("inverse-sqrt", r)) => LrSchedule::InverseSqrt {
            ref_steps: r
                .parse()
                .map_err(|_| anyhow::anyhow!("--lr-schedule: '{r}' is not a step count"))?,
        },
        _ => bail!("--lr-schedule: '{s}' is neither constant nor inverse-sqrt:REF_STEPS"),
    })
}

/// `--adam-betas b1,b2`.
fn parse_betas(s: &str) -> Result<[f64; 2]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--adam-betas: '{s}' is not two numbers b1,b2"))?;
    match v[..] {
        [a, b] => Ok([a, b]),
        _ => bail!("--adam-betas: '{s}' is not two numbers b1,b2"),
    }
}

/// `--batches`.
fn parse_batches(s: &str) -> Result<score_train::train::BatchOrder> {
    use score_train::train::BatchOrder;
    Ok(match s {
        "epochs" => BatchOrder::Epochs,
        "replacement" => BatchOrder::Replacement,
        _ => bail!("--batches: '{s}' is neither epochs nor replacement"),
    })
}

/// A setting that `--resume` cannot change: error when the flag was given with a value
/// other than the checkpoint's.
pub(crate) fn fixed_on_resume<T: PartialEq + std::fmt::Display>(
    flag: &str,
    given: Option<T>,
    stored: T,
    ck: &Path,
) -> Result<T> {
    match given {
        Some(g) if g != stored => bail!(
            "{flag} {g}: {} was trained with {stored}, and --resume cannot change it (start a new run in another --out, or --overwrite)",
            ck.display()
        ),
        _ => Ok(stored),
    }
}

/// The run's settings: from the flags, or on `--resume` from the checkpoint with the
/// changes the flags may make (lr, clipping, steps, checkpoint interval).
fn train_settings(
    c: &Common,
    a: &TrainArgs,
    ck_path: &Path,
    resume: Option<&CheckpointFile>,
) -> Result<(TrainConfig, RunRecord)> {
    let Some(ck) = resume else {
        let mut cfg = pipeline::demo_train_config(a.steps.unwrap_or(2000), c.seed());
        cfg.batch_size = a.batch_size.unwrap_or(cfg.batch_size);
        cfg.lr = a.lr.unwrap_or(cfg.lr);
        cfg.grad_clip = a
            .grad_clip
            .map_or(cfg.grad_clip, |g| (g > 0.0).then_some(g));
        cfg.checkpoint_every = a.checkpoint_every.unwrap_or(cfg.checkpoint_every);
        cfg.weight_decay = a.weight_decay.unwrap_or(cfg.weight_decay);
        if let Some(b) = &a.adam_betas {
            cfg.adam_betas = parse_betas(b)?;
        }
        if let Some(sch) = &a.lr_schedule {
            cfg.lr_schedule = parse_schedule(sch)?;
        }
        cfg.grad_accumulation = a.grad_accumulation.unwrap_or(cfg.grad_accumulation);
        if let Some(b) = &a.batches {
            cfg.batches = parse_batches(b)?;
        }
        let cond = a.cond.clone().unwrap_or_else(no_cond);
        if !matches!(cond.as_str(), "none" | "class") {
            bail!("--cond: '{cond}' is neither none nor class");
        }
        cfg.label_dropout = match (cond.as_str(), a.label_dropout) {
            ("none", Some(_)) => bail!("--label-dropout needs --cond class"),
            (_, p) => p.unwrap_or(if cond == "class" { 0.1 } else { 0.0 }),
        };
        let rec = RunRecord {
            data: a
                .data
                .clone()
                .unwrap_or_else(|| "fashion-mnist-test".into()),
            subset: a.subset.unwrap_or(0),
            channels: a.channels.unwrap_or(32),
            cond,
            augment: augment_of(a)?,
        };
        return Ok((cfg, rec));
    };
    let mut cfg: TrainConfig = serde_json::from_value(ck.meta.config["train"].clone())
        .with_context(|| format!("{}: config.train", ck_path.display()))?;
    let rec: RunRecord = serde_json::from_value(ck.meta.config["extra"]["cli"].clone())
        .with_context(|| {
            format!(
                "{}: config.extra.cli (written by `scorelab train`; this checkpoint was not, so it cannot be resumed from the CLI)",
                ck_path.display()
            )
        })?;
    fixed_on_resume("--seed", c.seed_arg, ck.meta.seed, ck_path)?;
    cfg.batch_size = fixed_on_resume("--batch-size", a.batch_size, cfg.batch_size, ck_path)?;
    fixed_on_resume(
        "--sigma-data",
        a.sigma_data,
        cfg.precond.sigma_data(),
        ck_path,
    )?;
    let rec = RunRecord {
        data: fixed_on_resume("--data", a.data.clone(), rec.data, ck_path)?,
        subset: fixed_on_resume("--subset", a.subset, rec.subset, ck_path)?,
        channels: fixed_on_resume("--channels", a.channels, rec.channels, ck_path)?,
        cond: fixed_on_resume("--cond", a.cond.clone(), rec.cond, ck_path)?,
        augment: rec.augment,
    };
    let asked =
        a.augment.is_some() || a.aug_p.is_some() || a.aug_transforms.is_some() || a.no_aug_cond;
    if asked {
        let json = |x: &Option<scoreaug::Augment>| serde_json::to_string(x).unwrap_or_default();
        if json(&augment_of(a)?) != json(&rec.augment) {
            bail!(
                "--augment/--aug-*: {} was trained with {}, and --resume cannot change it",
                ck_path.display(),
                json(&rec.augment)
            );
        }
    }
    fixed_on_resume(
        "--label-dropout",
        a.label_dropout,
        cfg.label_dropout,
        ck_path,
    )?;
    fixed_on_resume("--weight-decay", a.weight_decay, cfg.weight_decay, ck_path)?;
    let betas = a.adam_betas.as_deref().map(parse_betas).transpose()?;
    let fmt = |b: [f64; 2]| format!("{},{}", b[0], b[1]);
    fixed_on_resume("--adam-betas", betas.map(fmt), fmt(cfg.adam_betas), ck_path)?;
    let batches = a.batches.as_deref().map(parse_batches).transpose()?;
    let name = |b: score_train::train::BatchOrder| format!("{b:?}").to_lowercase();
    fixed_on_resume("--batches", batches.map(name), name(cfg.batches), ck_path)?;
    let mut changes = Vec::new();
    if let Some(lr) = a.lr.filter(|&lr| lr != cfg.lr) {
        changes.push(format!("lr {} -> {lr}", cfg.lr));
        cfg.lr = lr;
    }
    if let Some(g) = a.grad_clip.map(|g| (g > 0.0).then_some(g))
        && g != cfg.grad_clip
    {
        changes.push(format!("grad-clip {:?} -> {g:?}", cfg.grad_clip));
        cfg.grad_clip = g;
    }
    if let Some(st) = a.steps.filter(|&st| st != cfg.steps) {
        changes.push(format!("steps {} -> {st}", cfg.steps));
        cfg.steps = st;
    }
    if let Some(sch) = a.lr_schedule.as_deref().map(parse_schedule).transpose()?
        && sch != cfg.lr_schedule
    {
        changes.push(format!("lr-schedule {:?} -> {sch:?}", cfg.lr_schedule));
        cfg.lr_schedule = sch;
    }
    if let Some(k) = a.grad_accumulation.filter(|&k| k != cfg.grad_accumulation) {
        changes.push(format!(
            "grad-accumulation {} -> {k}",
            cfg.grad_accumulation
        ));
        cfg.grad_accumulation = k;
    }
    if let Some(k) = a.checkpoint_every.filter(|&k| k != cfg.checkpoint_every) {
        changes.push(format!("checkpoint-every {} -> {k}", cfg.checkpoint_every));
        cfg.checkpoint_every = k;
    }
    eprintln!(
        "resuming {} at step {}{}",
        ck_path.display(),
        ck.meta.step,
        if changes.is_empty() {
            String::new()
        } else {
            format!(" with {}", changes.join(", "))
        }
    );
    Ok((cfg, rec))
}

/// Refuse to train over an existing run unless --resume or --overwrite says what to do;
/// with --overwrite, remove the old checkpoint and log first.
pub(crate) fn guard_existing_run(
    resume: bool,
    overwrite: bool,
    out: &Path,
    ck_path: &Path,
) -> Result<()> {
    if resume || !ck_path.exists() {
        return Ok(());
    }
    if !overwrite {
        let step = CheckpointFile::read(ck_path)
            .map(|ck| format!("a checkpoint of step {}", ck.meta.step))
            .unwrap_or_else(|_| "a checkpoint".into());
        bail!(
            "{}: {step} is already there: pass --resume to continue that run or --overwrite to replace it",
            ck_path.display()
        );
    }
    for p in [ck_path.to_path_buf(), out.join("train.jsonl")] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn cmd_train(c: &Common, a: &TrainArgs) -> Result<()> {
    let dev = device(&c.device)?.autodiff();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let ck_path = a.out.join("checkpoint.safetensors");
    guard_existing_run(a.resume, a.overwrite, &a.out, &ck_path)?;
    let resume = if a.resume && ck_path.exists() {
        Some(CheckpointFile::read(&ck_path)?)
    } else {
        None
    };
    let (mut cfg, rec) = train_settings(c, a, &ck_path, resume.as_ref())?;
    // A new run's EDM preconditioning takes σ_data from --sigma-data or the data.
    let mut set_sigma_data = |values: &mut dyn Iterator<Item = f64>| -> Result<()> {
        if resume.is_none() {
            let sd = a
                .sigma_data
                .unwrap_or_else(|| score_core::precond::sigma_data_of(values));
            if !(sd > 0.0 && sd.is_finite()) {
                bail!("--sigma-data: must be positive and finite, got {sd} (constant data?)");
            }
            cfg.precond = score_core::Precond::edm(sd);
        }
        Ok(())
    };
    dev.seed(cfg.seed);
    let out = TrainOutput {
        keep_checkpoints: a.keep_checkpoints,
        checkpoint: Some(ck_path.clone()),
        log: Some(a.out.join("train.jsonl")),
        progress: !c.json,
        stop_after: None,
    };
    let with_record = |spec: ModelSpec| -> Result<serde_json::Value> {
        let mut extra = spec.to_json();
        extra["cli"] = serde_json::to_value(&rec)?;
        Ok(extra)
    };
    let t0 = Instant::now();
    let (step, loss) = if rec.data.ends_with(".npy") {
        let path = Path::new(&rec.data);
        let arr = score_io::npy::read_npy_finite(path)?;
        let (_, d) = arr.matrix(path)?;
        if rec.cond != "none" {
            bail!(
                "--cond class: {} has no labels (class conditioning needs an image data set)",
                rec.data
            );
        }
        if rec.augment.is_some() {
            bail!(
                "--augment: {} holds vectors; augmentation needs images",
                rec.data
            );
        }
        set_sigma_data(&mut arr.data.iter().copied())?;
        let mlp = MlpConfig::new(d).with_seed(cfg.seed);
        let extra = with_record(ModelSpec::mlp(&mlp, &rec.data))?;
        let data = VectorData {
            data: arr.data,
            dim: d,
        };
        let r = train(mlp.init(&dev), &data, &cfg, extra, &out, resume.as_ref())?;
        (r.step, r.last_loss)
    } else {
        let mut images = load_images(&rec.data, a.data_dir.as_deref())?;
        if rec.subset > 0 {
            images = images.balanced_subset(rec.subset);
            images.source = format!("{} (balanced subset of {})", images.source, rec.subset);
        }
        set_sigma_data(&mut images.pixels.iter().map(|&v| v as f64))?;
        let mut unet = pipeline::demo_unet_config().with_model_channels(rec.channels);
        unet.resolution = images.image_shape[1];
        unet.in_channels = images.image_shape[0];
        let use_labels = rec.cond == "class";
        if use_labels {
            unet.label_dim = images.num_classes;
        }
        if rec.augment.is_some() {
            unet.augment_dim = scoreaug::AUGMENT_DIM;
        }
        unet.validate()
            .map_err(|e| anyhow::anyhow!("{} images: {e}", images.source))?;
        let extra = with_record(ModelSpec::unet(&unet, images.image_shape, &images.source))?;
        let data = ImageData { images, use_labels };
        let objective: &dyn score_train::train::Objective<4> = match &rec.augment {
            Some(aug) => aug,
            None => &score_train::train::Denoising,
        };
        let r = score_train::train::train_with(
            unet.init(&dev),
            &data,
            &cfg,
            objective,
            extra,
            &out,
            resume.as_ref(),
        )?;
        (r.step, r.last_loss)
    };
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"checkpoint": ck_path, "step": step, "loss": loss, "seconds": secs}),
        || {
            outln!(
                "trained to step {step} (loss {loss:.4}) in {secs:.1} s; checkpoint {}",
                ck_path.display()
            )
        },
    );
    Ok(())
}

/// The conditioning `sample` uses: classes (from --class, or in turn) and --guidance for
/// a class-conditional UNet; none for an unconditional one (where --class and
/// --guidance are errors).
fn image_condition(
    net: &score_nn::unet::UNet,
    a: &SampleArgs,
    dev: &Device,
) -> Result<pipeline::ImageCondition> {
    let k = net.label_dim();
    if k == 0 {
        if a.class.is_some() || a.guidance != 1.0 {
            bail!(
                "--class/--guidance: {} is not class-conditional",
                a.checkpoint.display()
            );
        }
        return Ok(pipeline::ImageCondition::none());
    }
    if let Some(c) = a.class.filter(|&c| c >= k) {
        bail!("--class {c}: the checkpoint has classes 0..{}", k - 1);
    }
    if !a.guidance.is_finite() {
        bail!("--guidance: must be finite, got {}", a.guidance);
    }
    let classes: Vec<usize> = (0..a.n).map(|i| a.class.unwrap_or(i % k)).collect();
    Ok(pipeline::ImageCondition::classes(
        &classes, k, a.guidance, dev,
    ))
}

/// Refuse `--n 0` and a sample count whose working memory exceeds the machine's
/// (an estimate: the sampler's states, and the network's activations at full
/// resolution, about 24 maps of the widest level live at once, plus attention).
fn ensure_sampling_fits(model: &LoadedModel, n: usize) -> Result<()> {
    if n == 0 {
        bail!("--n: need at least one sample");
    }
    let n = n as u128;
    let bytes = match model {
        LoadedModel::Unet(net, [c, h, w]) => {
            let px = (*h * *w) as u128;
            let state = 8 * (*c as u128) * px * 4;
            let acts = 24 * net.widest_channels() as u128 * px * 4;
            let attn = 3 * (px / 16).pow(2) * 4;
            n.saturating_mul(state + acts + attn)
        }
        LoadedModel::Mlp(_, d) => n.saturating_mul(8 * 4 * (*d as u128).max(256)),
    };
    score_core::limits::ensure_fits("--n", bytes, "use a smaller --n")?;
    Ok(())
}

/// `sample --teleport --vp`: the VP path ([`gaussian_score::teleport_sample_vp`]) from the
/// EDM state `x_t` at σ₀, returned in EDM variables.
fn teleport_vp(
    den: &dyn score_core::Denoiser<4>,
    g: &gaussian_score::GaussianScore,
    sampler: &Sampler,
    sigmas: &[f64],
    x_t: burn::tensor::Tensor<4>,
    k: usize,
    ctx: &mut SampleContext<'_, 4>,
) -> Result<score_core::samplers::SampleOutput<4>> {
    let deterministic_ddim = matches!(sampler, Sampler::Ddim(o) if o.eta == 0.0);
    if !(matches!(sampler, Sampler::Euler) || deterministic_ddim) {
        bail!(
            "--vp: runs deterministic DDIM in VP coordinates; use --sampler euler, or ddim with --eta 0 (got {})",
            sampler.name()
        );
    }
    let vp = score_core::samplers::vp_coefficients;
    let last = *sigmas.last().context("--steps: empty grid")?;
    let mut out = gaussian_score::teleport_sample_vp(
        den,
        g,
        sigmas,
        x_t.mul_scalar(vp(sigmas[0]).0),
        k,
        ctx,
    )?;
    out.x = out.x.div_scalar(vp(last).0);
    Ok(out)
}

fn initial_noise(
    path: Option<&Path>,
    shape: &[usize],
    seed: u64,
    dev: &Device,
) -> Result<Vec<f32>> {
    let n = score_core::limits::element_count("--n", shape)?;
    match path {
        Some(p) => {
            let arr = read_npy_finite(p)?;
            if arr.data.len() != n {
                bail!(
                    "{}: noise has shape {:?} ({} values), expected {:?}",
                    p.display(),
                    arr.shape,
                    arr.data.len(),
                    shape
                );
            }
            Ok(arr.data.iter().map(|&v| v as f32).collect())
        }
        None => {
            let mut rng = stream_rng(seed, 0x4e4f_4953, 0);
            Ok(to_vec_f32(randn([n], &mut rng, dev))?)
        }
    }
}

fn cmd_sample(c: &Common, a: &SampleArgs) -> Result<()> {
    let dev = device(&c.device)?;
    let weights = match a.weights.as_str() {
        "ema" => pipeline::Weights::Ema,
        "raw" => pipeline::Weights::Raw,
        other => bail!("--weights: '{other}' is neither ema nor raw"),
    };
    let (model, precond, meta) = pipeline::load_model_weights(&a.checkpoint, &dev, weights)?;
    ensure_sampling_fits(&model, a.n)?;
    if let Some(sigma_gen) = disback::teacher::one_step_sigma(&meta.config) {
        return distill_cmd::sample_one_step(c, a, &model, &precond, sigma_gen, meta.step, &dev);
    }
    let sampler = sampler_from(&a.sampler, c.seed(), &a.sampler_opts)?;
    let kind = a.grid.parse::<GridKind>()?;
    let sigmas = match (kind, a.rho) {
        (GridKind::Karras, Some(rho)) => {
            let (lo, hi) = kind.default_range();
            score_core::sigmas::karras_sigmas(
                a.steps,
                a.sigma_min.unwrap_or(lo),
                a.sigma_max.unwrap_or(hi),
                rho,
            )?
        }
        (_, Some(_)) => bail!("--rho applies to the karras grid, not {}", a.grid),
        (_, None) => kind.build_or_default(a.steps, a.sigma_min, a.sigma_max)?,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let t0 = Instant::now();
    let pb = (!c.json).then(|| bar((sigmas.len() - 1) as u64, "sample"));
    let mut teleport_k: Option<usize> = None;
    let mut calibration_nfe = 0;
    // Classifier-free guidance costs two network calls per denoiser evaluation.
    let mut calls_per_eval = 1;
    let mut pngs: Option<Vec<u8>> = None;
    let (values, shape, nfe) = match &model {
        LoadedModel::Unet(net, [ch, h, w]) => {
            let shape = [a.n, *ch, *h, *w];
            let z = initial_noise(a.noise.as_deref(), &shape, c.seed(), &dev)?;
            let noise = score_core::tensor::from_f32(z, shape, &dev);
            let condition = image_condition(net, a, &dev)?;
            if condition.cond.is_some() && condition.guidance != 1.0 {
                calls_per_eval = 2;
            }
            let out = match &a.teleport {
                None => pipeline::generate_images(
                    net,
                    precond,
                    &sampler,
                    &sigmas,
                    noise,
                    &condition,
                    |i, _| {
                        if let Some(b) = &pb {
                            b.set_position(i as u64)
                        }
                    },
                )?,
                Some(_) if condition.cond.is_some() => {
                    bail!(
                        "--teleport: the Gaussian model is unconditional; this checkpoint is class-conditional"
                    )
                }
                Some(model) => {
                    let g = gaussian_score::ScoreModel::load(model)?;
                    let g = g.gaussian()?;
                    let den = Preconditioned::new(net, precond);
                    let x_t = noise.mul_scalar(sigmas[0]);
                    let skip = gaussian_score::Skip::from_options(
                        &a.skip,
                        a.skip_sigma,
                        a.skip_threshold,
                    )?;
                    let probes = x_t.clone().narrow(0, 0, x_t.dims()[0].min(16));
                    let (k, calib) = skip.resolve(&den, g, &sigmas, probes, None)?;
                    calibration_nfe = calib;
                    teleport_k = Some(k);
                    let mut ctx = gaussian_score::teleport::progress(|i, _| {
                        if let Some(b) = &pb {
                            b.set_position((k + i) as u64)
                        }
                    });
                    if a.vp {
                        teleport_vp(&den, g, &sampler, &sigmas, x_t, k, &mut ctx)?
                    } else {
                        gaussian_score::teleport_sample(
                            &den, g, &sampler, &sigmas, x_t, k, &mut ctx,
                        )?
                    }
                }
            };
            let v = to_vec_f32(out.x)?;
            let png = image_grid_png(&v, shape, (a.n as f64).sqrt().ceil() as usize)?;
            pngs = Some(png);
            (v, shape.to_vec(), out.nfe)
        }
        LoadedModel::Mlp(net, d) => {
            if a.teleport.is_some() || a.vp {
                bail!("--teleport is implemented for image (UNet) checkpoints");
            }
            let shape = [a.n, *d];
            let z = initial_noise(a.noise.as_deref(), &shape, c.seed(), &dev)?;
            let x = from_f64(
                &z.iter().map(|&v| v as f64 * sigmas[0]).collect::<Vec<_>>(),
                shape,
                &dev,
            );
            let den = Preconditioned::new(net, precond);
            let out = sampler.sample(&den, &sigmas, x, &mut SampleContext::new())?;
            (to_vec_f32(out.x)?, shape.to_vec(), out.nfe)
        }
    };
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    // Both files or neither: a failure never leaves a new one beside an old one.
    let npy = npy_f32_bytes(&shape, &values)?;
    let (npy_path, png_path) = (a.out.join("samples.npy"), a.out.join("samples.png"));
    let mut files: Vec<(&Path, &[u8])> = vec![(&npy_path, &npy)];
    if let Some(p) = &pngs {
        files.push((&png_path, p));
    }
    write_atomic_all(&files)?;
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"checkpoint": a.checkpoint, "trained_steps": meta.step, "sampler": sampler.name(), "steps": a.steps, "nfe": nfe + calibration_nfe, "calibration_nfe": calibration_nfe, "network_calls": nfe * calls_per_eval + calibration_nfe, "teleport_skip": teleport_k, "n": a.n, "seconds": secs, "out": a.out}),
        || {
            outln!(
                "{} samples with {} ({} NFE{}) in {secs:.1} s -> {}",
                a.n,
                sampler.name(),
                nfe + calibration_nfe,
                if calibration_nfe > 0 {
                    format!(", of which {calibration_nfe} for the automatic skip")
                } else {
                    String::new()
                },
                a.out.display()
            )
        },
    );
    Ok(())
}

fn cmd_sigmas(c: &Common, a: &SigmasArgs) -> Result<()> {
    let s = a
        .grid
        .parse::<GridKind>()?
        .build_or_default(a.steps, a.sigma_min, a.sigma_max)?;
    emit(
        c.json,
        serde_json::json!({"grid": a.grid, "sigmas": s}),
        || {
            for (i, v) in s.iter().enumerate() {
                outln!("{i:4}  {v:.6}");
            }
        },
    );
    Ok(())
}

fn cmd_demo(c: &Common, a: &DemoArgs) -> Result<()> {
    let dev = device(&c.device)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let t0 = Instant::now();
    let (train_set, held) = pipeline::demo_split()?;
    let ck_path = if a.train {
        let out = a.out.join("train");
        eprintln!(
            "training a UNet from scratch on {} images for {} steps",
            train_set.num_images(),
            a.train_steps
        );
        pipeline::train_demo_unet(a.train_steps, c.seed(), &out, !c.json, &dev, false, None)?;
        out.join("checkpoint.safetensors")
    } else {
        a.checkpoint
            .clone()
            .unwrap_or_else(pipeline::shipped_checkpoint)
    };
    let (net, [ch, h, w], precond, meta) = pipeline::load_unet(&ck_path, &dev)?;
    ensure_sampling_fits(&LoadedModel::Unet(net.clone(), [ch, h, w]), a.n)?;
    let sampler = Sampler::Heun(Default::default());
    let sigmas = GridKind::Karras.build(a.steps, 0.002, 80.0)?;
    let shape = [a.n, ch, h, w];
    let noise =
        score_core::tensor::from_f32(initial_noise(None, &shape, c.seed(), &dev)?, shape, &dev);
    let pb = (!c.json).then(|| bar((sigmas.len() - 1) as u64, "heun"));
    let ts = Instant::now();
    let none = pipeline::ImageCondition::none();
    let out = pipeline::generate_images(&net, precond, &sampler, &sigmas, noise, &none, |i, _| {
        if let Some(b) = &pb {
            b.set_position(i as u64)
        }
    })?;
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    let sample_secs = ts.elapsed().as_secs_f64();
    let v = to_vec_f32(out.x)?;
    let grid = a.out.join("samples.png");
    let real: Vec<f32> = held.pixels[..a.n.min(held.num_images()) * ch * h * w].to_vec();
    let (npy, real_png) = (a.out.join("samples.npy"), a.out.join("real.png"));
    write_atomic_all(&[
        (&grid, &image_grid_png(&v, shape, 8)?),
        (&npy, &npy_f32_bytes(&shape, &v)?),
        (
            &real_png,
            &image_grid_png(&real, [a.n.min(held.num_images()), ch, h, w], 8)?,
        ),
    ])?;
    let gen64: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    let m = pipeline::image_metrics(&gen64, &held.rows_f64(), &train_set.rows_f64(), ch * h * w)?;
    let fid = if a.no_fid {
        serde_json::json!({ "skipped": "--no-fid" })
    } else {
        fid::demo_fid(&v, shape, &train_set, &held, c.json, &dev)?
    };
    let secs = t0.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "checkpoint": ck_path, "trained_steps": meta.step, "sampler": "heun", "steps": a.steps, "nfe": out.nfe,
        "sample_seconds": sample_secs, "total_seconds": secs, "grid": grid, "metrics": m, "fid": fid,
    });
    score_core::fs::write_atomic(
        &a.out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    emit(c.json, report, || {
        outln!(
            "checkpoint      {} ({} training steps)",
            ck_path.display(),
            meta.step
        );
        outln!(
            "sampling        Heun, {} levels, {} network evaluations, {:.1} s for {} images",
            a.steps,
            out.nfe,
            sample_secs,
            a.n
        );
        outln!(
            "image grid      {}   (real held-out images: {})",
            grid.display(),
            a.out.join("real.png").display()
        );
        outln!(
            "sliced W2       {:.4} to held-out images (real-vs-real floor at this size: {:.4})",
            m.sliced_w2_to_heldout,
            m.sliced_w2_real_floor
        );
        outln!(
            "NN distance     generated→train {:.3}, held-out→train {:.3}",
            m.nn_dist_generated_to_train,
            m.nn_dist_heldout_to_train
        );
        outln!(
            "memorisation    {:.3} (fraction of samples nearer than 1/3 of the 2nd neighbour)",
            m.memorization_rate
        );
        outln!(
            "pixel mean/std  {:.3} / {:.3} (real: about -0.43 / 0.71)",
            m.pixel_mean,
            m.pixel_std
        );
        print_demo_fid(&fid);
        outln!(
            "total           {secs:.1} s; report {}",
            a.out.join("report.json").display()
        );
    });
    Ok(())
}

fn print_demo_fid(fid: &serde_json::Value) {
    if let Some(why) = fid["skipped"].as_str() {
        outln!("FID             skipped: {why}");
        return;
    }
    let get = |k: &str, f: &str| fid[k][f].as_f64().unwrap_or(f64::NAN);
    outln!(
        "FID             {:.2} ± {:.2} for {} samples vs the {} held-out images; {} real training images score {:.2} ± {:.2} (FID is biased upward at small n: compare the two)",
        get("fid", "fid"),
        get("fid", "std_error"),
        fid["fid"]["n"],
        fid["fid"]["n_ref"],
        fid["real_floor"]["n"],
        get("real_floor", "fid"),
        get("real_floor", "std_error"),
    );
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(n) = cli.common.threads {
        if n == 0 {
            bail!("--threads: must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("--threads: setting up the thread pool")?;
    }
    match &cli.command {
        Command::Train(a) => cmd_train(&cli.common, a),
        Command::Sample(a) => cmd_sample(&cli.common, a),
        Command::Sigmas(a) => cmd_sigmas(&cli.common, a),
        Command::Gaussian(g) => gaussian::run(&cli.common, g),
        Command::Ntk(n) => ntk::run(&cli.common, n),
        Command::Musicscore(m) => musicscore::run(m, &cli.common),
        Command::Demo(a) => cmd_demo(&cli.common, a),
        Command::Ems(a) => cmd_ems(&cli.common, a),
        Command::Fid(a) => fid::run_fid(&cli.common, a),
        Command::FidStats(a) => fid::run_fid_stats(&cli.common, a),
        Command::Scoreaug(s) => scoreaug_cmd::run(&cli.common, s),
        Command::Distill(a) => distill_cmd::cmd_distill(&cli.common, a),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error, then any cause it does not already spell out.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
