//! The flags of the commands defined in `main.rs` (train, sample, sigmas, demo, ems).

use crate::common::*;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct EmsArgs {
    /// Checkpoint written by `scorelab train` (EMA weights).
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Or an exact model of `scorelab gaussian fit` (Gaussian, mixture or delta
    /// mixture), with `--data` a `.npy` of rows; `gaussian sample --sampler
    /// dpm-solver-v3 --ems` then samples it.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Data the statistics are taken over: `fashion-mnist-test` (a class-balanced
    /// subset of the shipped images) or a `.npy` file of rows.
    #[arg(long, default_value = "fashion-mnist-test")]
    pub(crate) data: String,
    /// Samples per λ point.
    #[arg(long, default_value_t = 64)]
    pub(crate) n: usize,
    /// λ points between σ_min and σ_max (4 network evaluations each).
    #[arg(long, default_value_t = 32)]
    pub(crate) points: usize,
    /// Smallest σ.
    #[arg(long, default_value_t = 0.002)]
    pub(crate) sigma_min: f64,
    /// Largest σ.
    #[arg(long, default_value_t = 80.0)]
    pub(crate) sigma_max: f64,
    /// Output JSON file.
    #[arg(long, default_value = "out/ems.json")]
    pub(crate) out: PathBuf,
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// A run file (TOML) whose keys are these flags without `--` (`steps = 3000`,
    /// `batch_size = 32`, `xflip = true`, also `seed`); flags given here override
    /// it. Every run writes its effective configuration as OUT/config.toml, which
    /// repeats the run: `--config OUT/config.toml --out OTHER`.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Training data: `fashion-mnist` (train split from --data-dir or Debian's package),
    /// `fashion-mnist-test` (the 10 000 images shipped in data/), or a `.npy` file of
    /// vectors [n, d] (trains the MLP) [default: fashion-mnist-test; on --resume, the
    /// checkpoint's].
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Folder with Fashion-MNIST IDX files (overrides the search path).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Output folder: checkpoint.safetensors, train.jsonl.
    #[arg(long, default_value = "out/train")]
    pub(crate) out: PathBuf,
    /// Total optimisation steps [default: 2000; on --resume, the checkpoint's total].
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Minibatch size [default: 32; fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Peak learning rate [default: 2e-3; on --resume, the checkpoint's, or this new one].
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Clip the global gradient norm to this value, 0 = off [default: off, as EDM; on
    /// --resume, the checkpoint's, or this new one].
    #[arg(long)]
    pub(crate) grad_clip: Option<f64>,
    /// Write a checkpoint every this many steps (and at the end) [default: 200].
    #[arg(long)]
    pub(crate) checkpoint_every: Option<usize>,
    /// Also keep each checkpoint written, as checkpoint.step<N>.safetensors in --out
    /// (for studies over training).
    #[arg(long)]
    pub(crate) keep_checkpoints: bool,
    /// Decoupled weight decay; > 0 trains with AdamW [default: 0, Adam].
    #[arg(long)]
    pub(crate) weight_decay: Option<f64>,
    /// Adam's β₁,β₂ [default: 0.9,0.999].
    #[arg(long)]
    pub(crate) adam_betas: Option<String>,
    /// Learning-rate schedule after the warm-up: constant, or inverse-sqrt:REF_STEPS
    /// (EDM2's lr/sqrt(max(step/REF, 1))) [default: constant].
    #[arg(long)]
    pub(crate) lr_schedule: Option<String>,
    /// Split each batch into K micro-batches and accumulate their gradients (the same
    /// step in less memory) [default: 1].
    #[arg(long)]
    pub(crate) grad_accumulation: Option<usize>,
    /// Data parallelism: a comma-separated list of devices (e.g. cuda:0,cuda:1) that
    /// share each batch, in place of --device. The first holds the network, optimiser
    /// and EMA; micro-batch j of --grad-accumulation (default: the device count) runs on
    /// device j mod N, and the gradients are added on the first in the order of j, so
    /// the step is the one a single device takes with the same --grad-accumulation.
    #[arg(long, value_delimiter = ',')]
    pub(crate) devices: Vec<String>,
    /// How batches are drawn: epochs (shuffled, each image once per epoch) or
    /// replacement [default: epochs].
    #[arg(long)]
    pub(crate) batches: Option<String>,
    /// Conditioning: none, or class (labels of the image data set, for classifier-free
    /// guidance with `sample --guidance`) [default: none].
    #[arg(long)]
    pub(crate) cond: Option<String>,
    /// With --cond class: probability of dropping a sample's label [default: 0.1].
    #[arg(long)]
    pub(crate) label_dropout: Option<f64>,
    /// Continue from <out>/checkpoint.safetensors if it exists. --lr, --grad-clip,
    /// --lr-schedule, --grad-accumulation, --steps and --checkpoint-every may change;
    /// the network, data, batches, optimiser and seed may not.
    #[arg(long, conflicts_with = "overwrite")]
    pub(crate) resume: bool,
    /// Start again in an <out> that holds a checkpoint (its checkpoint and log are
    /// replaced); without it, train refuses to overwrite a run.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// σ_data of the EDM preconditioning [default: the standard deviation of the
    /// training data; fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) sigma_data: Option<f64>,
    /// UNet base width, even (images only) [default: 32; fixed by the checkpoint on
    /// --resume].
    #[arg(long)]
    pub(crate) channels: Option<usize>,
    /// The image network: `scorelab` (the small UNet), or one of EDM's: `ddpmpp`,
    /// `ncsnpp` (SongUNet) or `adm` (DhariwalUNet), EDM's published configuration with
    /// --channels as model_channels and --blocks residual blocks per level
    /// (docs/own-models.md) [default: scorelab; fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) arch: Option<String>,
    /// With an EDM --arch: residual blocks per resolution (EDM: 4 for SongUNet, 3 for
    /// ADM) [default: 2; fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) blocks: Option<usize>,
    /// Use only the first N images (class-balanced), 0 = all [fixed by the checkpoint
    /// on --resume].
    #[arg(long)]
    pub(crate) subset: Option<usize>,
    /// EDM's dataset x-flip (`--xflip`): train on every image and its left-right
    /// mirror, doubling the data [fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) xflip: bool,
    /// Resize every image so that its shorter side is N (box filter: the area-weighted
    /// mean of the covered pixels), then crop the centre N × N; lets a folder of mixed
    /// sizes train [fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) resolution: Option<usize>,
    /// Augmentation (images): none, nla (EDM's non-leaky augmentation), scoreaug, or
    /// nla+scoreaug [default: none; fixed by the checkpoint on --resume].
    #[arg(long)]
    pub(crate) augment: Option<String>,
    /// ScoreAug: probability of a non-identity transform [default: 0.5].
    #[arg(long)]
    pub(crate) aug_p: Option<f64>,
    /// ScoreAug: transforms to draw from [default: rot90,flip,translate,cutout,brightness].
    #[arg(long)]
    pub(crate) aug_transforms: Option<String>,
    /// Do not condition the network on the augmentation parameters ω (the leakage
    /// control of the ScoreAug paper).
    #[arg(long)]
    pub(crate) no_aug_cond: bool,
    /// NLA's transforms: edm (EDM's pipeline as train.py runs it: flips, scaling,
    /// rotation, anisotropy, fractional translation) or blit (flips, rot90, integer
    /// translation: this toolkit's earlier set) [default: edm; fixed on --resume].
    #[arg(long)]
    pub(crate) nla_set: Option<String>,
}

#[derive(Args)]
pub(crate) struct SampleArgs {
    /// Checkpoint written by `scorelab train` (EMA weights are used when present).
    #[arg(long)]
    pub(crate) checkpoint: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    pub(crate) n: usize,
    /// euler, heun, dpmpp-2m, euler-ancestral, ddim, dpmpp-2m-sde, dpmpp-3m-sde, unipc or
    /// dpm-solver-v3 (with --ems) [default: heun].
    #[arg(long)]
    pub(crate) sampler: Option<String>,
    /// Number of σ levels (Heun uses 2N − 1 evaluations) [default: 18].
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// σ grid: karras, vp, ve, log-uniform or linear [default: karras].
    #[arg(long)]
    pub(crate) grid: Option<String>,
    #[command(flatten)]
    pub(crate) sampler_opts: SamplerOpts,
    /// karras: the grid's ρ [default: 7, EDM's].
    #[arg(long)]
    pub(crate) rho: Option<f64>,
    /// Class-conditional checkpoints: the class of every sample [default: classes in
    /// turn, 0, 1, …].
    #[arg(long)]
    pub(crate) class: Option<usize>,
    /// Classifier-free guidance scale w (1 = the conditional model, 0 = the
    /// unconditional one; class-conditional checkpoints only).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) guidance: f64,
    /// Smallest σ of the grid [default: the grid's own, 0.002 for karras].
    #[arg(long)]
    pub(crate) sigma_min: Option<f64>,
    /// Largest σ of the grid [default: the grid's own, 80 for karras].
    #[arg(long)]
    pub(crate) sigma_max: Option<f64>,
    /// Start from this unit-Gaussian noise (.npy, shape [n, …]) instead of drawing it.
    #[arg(long)]
    pub(crate) noise: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "out/sample")]
    pub(crate) out: PathBuf,
    /// Which weights: ema (default) or raw.
    #[arg(long, default_value = "ema")]
    pub(crate) weights: String,
    /// Analytical teleportation: a Gaussian model (`scorelab gaussian fit`) of the
    /// training data; the first steps are replaced by its closed-form solution.
    #[arg(long)]
    pub(crate) teleport: Option<PathBuf>,
    /// With --teleport: skip k steps, a percentage of them (`15%`: k = 3 of 18, measured
    /// free of FID cost on the shipped model, docs/gaussian-score.md), or `auto` (the
    /// explained-variance rule, which spends calibration evaluations; see also
    /// --skip-sigma).
    /// [default: 15%]
    #[arg(long)]
    pub(crate) skip: Option<String>,
    /// With --teleport: skip to the first grid level at or below this σ.
    #[arg(long)]
    pub(crate) skip_sigma: Option<f64>,
    /// With --skip auto: score explained-variance threshold (0.9975 = 5% relative error
    /// of the ODE velocity).
    /// [default: 0.9975]
    #[arg(long)]
    pub(crate) skip_threshold: Option<f64>,
    /// With --teleport: teleport and sample in VP coordinates (x_vp = x/√(1 + σ²); the VP
    /// closed form, then deterministic DDIM on VP states). Needs --sampler euler or ddim
    /// with --eta 0, which it reproduces in EDM variables.
    #[arg(long)]
    pub(crate) vp: bool,
    /// Sample in batches of B images and write each image as OUT/images/000000.png …,
    /// image i from its own noise (seed, i), as EDM's `generate.py --seeds`: any subset
    /// regenerates exactly (deterministic samplers; stochastic ones draw their step
    /// noise per batch). Memory stays one batch; samples.npy and the grid are written
    /// too when all images fit in memory. Images already in OUT/images are kept, so a
    /// killed run continues where it stopped.
    #[arg(long)]
    pub(crate) batch: Option<usize>,
}

#[derive(Args)]
pub(crate) struct SigmasArgs {
    /// Number of levels N (σ_N = 0 is appended).
    #[arg(long, default_value_t = 18)]
    pub(crate) steps: usize,
    /// karras, vp, ve, log-uniform or linear.
    #[arg(long, default_value = "karras")]
    pub(crate) grid: String,
    /// Smallest σ [default: the grid's own: 0.002 for karras, log-uniform and linear,
    /// 0.0105 for vp, 0.02 for ve].
    #[arg(long)]
    pub(crate) sigma_min: Option<f64>,
    /// Largest σ [default: the grid's own: 80, 152.2 for vp, 100 for ve].
    #[arg(long)]
    pub(crate) sigma_max: Option<f64>,
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Train a UNet from scratch on the shipped images first, instead of using the
    /// shipped checkpoint.
    #[arg(long)]
    pub(crate) train: bool,
    /// Training steps with --train.
    #[arg(long, default_value_t = 600)]
    pub(crate) train_steps: usize,
    /// Images to generate.
    #[arg(long, default_value_t = 64)]
    pub(crate) n: usize,
    /// Skip FID (the Inception-v3 features take about 15 s per 64 images on 2 cores).
    #[arg(long)]
    pub(crate) no_fid: bool,
    /// Heun σ levels (EDM uses 18 for 32×32 images).
    #[arg(long, default_value_t = 18)]
    pub(crate) steps: usize,
    /// Output folder.
    #[arg(long, default_value = "out/demo")]
    pub(crate) out: PathBuf,
    /// Checkpoint to sample (default: the one shipped in data/checkpoints).
    #[arg(long)]
    pub(crate) checkpoint: Option<PathBuf>,
}
