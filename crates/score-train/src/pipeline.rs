//! End-to-end recipes shared by the `scorelab` CLI, `cargo xtask` and the benches:
//! the demo's network and training settings, loading any scorelab checkpoint back into
//! its network, generating images, and the image metrics the demo reports.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::checkpoint::{CheckpointFile, CheckpointMeta, save_checkpoint};
use crate::train::TrainConfig;
use crate::train::{ImageData, TrainOutput, TrainResult, train};
use score_core::denoiser::Conditioning;
use score_core::error::{Result, ScoreError};
use score_core::metrics;
use score_core::precond::Precond;
use score_core::samplers::{SampleContext, SampleOutput, Sampler};
use score_io::images::{ImageDataset, Split};
use score_nn::diffusers::UNet2DConfig;
use score_nn::edm::EdmNetConfig;
use score_nn::mlp::{MlpConfig, MlpDenoiser};
use score_nn::network::ImageNet;
use score_nn::unet::{UNet, UNetConfig};
use score_nn::{Preconditioned, ScoreNetwork};

/// The network description stored in a checkpoint's configuration (`extra`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSpec {
    /// A UNet on images of `image_shape` = [c, h, w].
    Unet {
        /// The network configuration.
        config: serde_json::Value,
        /// [c, h, w].
        image_shape: [usize; 3],
        /// Where the training data came from.
        dataset: String,
    },
    /// One of EDM's networks (SongUNet, DhariwalUNet) on images of `image_shape`,
    /// configured by EDM's keyword arguments (`score_nn::edm::EdmNetConfig`).
    Edm {
        /// EDM's network keyword arguments.
        config: serde_json::Value,
        /// [c, h, w].
        image_shape: [usize; 3],
        /// Where the weights came from.
        dataset: String,
    },
    /// diffusers' `UNet2DModel` on images of `image_shape`, configured by its
    /// `config.json` (`score_nn::diffusers::UNet2DConfig`).
    Diffusers {
        /// diffusers' configuration.
        config: serde_json::Value,
        /// [c, h, w].
        image_shape: [usize; 3],
        /// Where the weights came from.
        dataset: String,
    },
    /// An MLP on vectors of dimension `dim`.
    Mlp {
        /// The network configuration.
        config: serde_json::Value,
        /// The data dimension.
        dim: usize,
        /// Where the training data came from.
        dataset: String,
    },
}

impl ModelSpec {
    /// A UNet spec.
    pub fn unet(cfg: &UNetConfig, image_shape: [usize; 3], dataset: &str) -> Self {
        Self::Unet {
            config: serde_json::to_value(cfg).expect("config serialises"),
            image_shape,
            dataset: dataset.into(),
        }
    }

    /// An MLP spec.
    pub fn mlp(cfg: &MlpConfig, dataset: &str) -> Self {
        Self::Mlp {
            config: serde_json::to_value(cfg).expect("config serialises"),
            dim: cfg.dim,
            dataset: dataset.into(),
        }
    }

    /// As JSON, for [`crate::train::train`]'s `extra`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("spec serialises")
    }
}

/// The demo's UNet: 28×28 grayscale, widths 16/32/32, one residual block per level
/// in the encoder (two in the decoder), attention at 7×7. Sized for a 2-core CPU: a
/// training step at batch 32 takes about 0.7 s there.
pub fn demo_unet_config() -> UNetConfig {
    UNetConfig::new(28)
        .with_in_channels(1)
        .with_model_channels(16)
        .with_channel_mult(vec![1, 2, 2])
        .with_blocks_per_level(1)
        .with_attn_resolutions(vec![7])
        .with_dropout(0.0)
        .with_groups(8)
}

/// The demo's UNet laid out for `resolution`, as EDM lays out CIFAR-10 (32×32) and
/// FFHQ-64: the demo's three levels `[1, 2, 2]` up to 32 pixels, one more level of
/// multiplier 2 per doubling past 32 (64×64: `[1, 2, 2, 2]`, down to 8×8), and
/// self-attention at the lowest level (the demo's 7×7 at 28 pixels). Resolutions that
/// do not halve that often keep the demo's three levels.
pub fn unet_config_for(resolution: usize, in_channels: usize, model_channels: usize) -> UNetConfig {
    let mut extra = 0;
    while resolution > (32 << extra) && resolution.is_multiple_of(1 << (3 + extra)) {
        extra += 1;
    }
    let mut mult = vec![1, 2, 2];
    mult.extend(std::iter::repeat_n(2, extra));
    let lowest = resolution >> (mult.len() - 1);
    let mut unet = demo_unet_config()
        .with_model_channels(model_channels)
        .with_channel_mult(mult)
        .with_attn_resolutions(vec![lowest]);
    unet.resolution = resolution;
    unet.in_channels = in_channels;
    unet
}

/// The channel multipliers of EDM's published configurations at `resolution`:
/// CIFAR-10's (`[2, 2, 2]` for DDPM++/NCSN++, ADM's `[1, 2, 2]` at 32) up to 32
/// pixels, FFHQ-64's `[1, 2, 2, 2]` and ImageNet-64's ADM `[1, 2, 3, 4]` from 64, and
/// the attention resolution (EDM: 16).
pub fn edm_layout_for(arch: &str, resolution: usize) -> (Vec<usize>, usize) {
    match (arch, resolution >= 64) {
        ("adm", false) => (vec![1, 2, 2], resolution / 2),
        ("adm", true) => (vec![1, 2, 3, 4], 16),
        (_, false) => (vec![2, 2, 2], resolution / 2),
        (_, true) => (vec![1, 2, 2, 2], 16),
    }
}

/// The demo's optimisation settings for `steps` steps (σ_data = 0.5 until the caller
/// sets the preconditioning from its data, see [`score_core::precond::sigma_data_of`]).
pub fn demo_train_config(steps: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 32,
        lr: 2e-3,
        warmup_steps: 200.min(steps / 4 + 1),
        grad_clip: None,
        ema_halflife_kimg: 500.0,
        ema_rampup_ratio: Some(0.05),
        precond: Precond::edm(0.5),
        checkpoint_every: 200,
        log_every: 20,
        seed,
        ..TrainConfig::default()
    }
}

/// A network loaded from a checkpoint, with its preconditioning.
#[allow(clippy::large_enum_variant)] // built once per command; boxing buys nothing
pub enum LoadedModel {
    /// An image network (the crate's UNet or EDM's) and its image shape [c, h, w].
    Unet(ImageNet, [usize; 3]),
    /// An MLP and its dimension.
    Mlp(MlpDenoiser, usize),
}

/// Which weights of a checkpoint to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// The EMA weights when present, else the raw ones.
    #[default]
    Ema,
    /// The raw (last optimiser step) weights.
    Raw,
}

/// Load a checkpoint's denoiser (the EMA weights when present, else the trained ones).
/// A one-step generator (`scorelab distill`'s output) is refused, naming the file: it
/// maps noise to images at one σ and is no denoiser D(x; σ) for the other levels.
pub fn load_model(path: &Path, device: &Device) -> Result<(LoadedModel, Precond, CheckpointMeta)> {
    let loaded = load_model_weights(path, device, Weights::Ema)?;
    if one_step_sigma(path, &loaded.2)?.is_some() {
        return Err(ScoreError::Checkpoint {
            path: path.to_path_buf(),
            detail: "a one-step generator (the output of `scorelab distill`), not a denoiser of every σ: only `scorelab sample` takes it".into(),
        });
    }
    Ok(loaded)
}

/// The objective name a one-step generator's checkpoint records.
pub const ONE_STEP_NAME: &str = "one-step-generator";

/// What a checkpoint's `config.objective` says of a one-step generator.
#[derive(serde::Deserialize)]
struct ObjectiveRecord {
    objective: Option<ObjectiveName>,
}

#[derive(serde::Deserialize)]
struct ObjectiveName {
    name: Option<String>,
    sigma_gen: Option<f64>,
}

/// σ_gen of a one-step generator's checkpoint, `None` for any other checkpoint. A
/// one-step checkpoint without a finite, positive σ_gen is an error naming the file.
pub fn one_step_sigma(path: &Path, meta: &CheckpointMeta) -> Result<Option<f64>> {
    let rec: ObjectiveRecord = meta.config_as(path)?;
    let Some(o) = rec
        .objective
        .filter(|o| o.name.as_deref() == Some(ONE_STEP_NAME))
    else {
        return Ok(None);
    };
    match o.sigma_gen {
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(s)),
        other => Err(ScoreError::Checkpoint {
            path: path.to_path_buf(),
            detail: format!(
                "config.objective.sigma_gen: a one-step generator needs a finite σ_gen > 0, found {other:?}"
            ),
        }),
    }
}

/// Load a checkpoint's network with the chosen weights.
pub fn load_model_weights(
    path: &Path,
    device: &Device,
    weights: Weights,
) -> Result<(LoadedModel, Precond, CheckpointMeta)> {
    let ck = CheckpointFile::read(path)?;
    let bad = |detail: String| ScoreError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    let crate::train::RunConfig {
        train, extra: spec, ..
    } = ck
        .meta
        .config_as::<crate::train::RunConfig<ModelSpec>>(path)?;
    let prefix = match weights {
        Weights::Ema if ck.has("ema.") => "ema.",
        Weights::Raw if !ck.has("model.") => {
            return Err(bad(
                "no raw weights (model.*): this is a sampling-only export; use the EMA weights"
                    .into(),
            ));
        }
        _ => "model.",
    };
    let model = match spec {
        ModelSpec::Unet {
            config,
            image_shape,
            ..
        } => {
            let cfg =
                UNetConfig::from_json(config).map_err(|e| bad(format!("UNet config: {e}")))?;
            cfg.validate().map_err(bad)?;
            let net = ck.load_into(cfg.init(device), prefix, false)?;
            LoadedModel::Unet(ImageNet::Scorelab(net), image_shape)
        }
        ModelSpec::Edm {
            config,
            image_shape,
            ..
        } => {
            let cfg: EdmNetConfig =
                serde_json::from_value(config).map_err(|e| bad(format!("EDM network: {e}")))?;
            let net = cfg.init(device).map_err(bad)?;
            LoadedModel::Unet(
                ImageNet::Edm(ck.load_into(net, prefix, false)?),
                image_shape,
            )
        }
        ModelSpec::Diffusers {
            config,
            image_shape,
            ..
        } => {
            let cfg: UNet2DConfig = serde_json::from_value(config)
                .map_err(|e| bad(format!("diffusers UNet2DModel: {e}")))?;
            let net = ck.load_into(cfg.init(device).map_err(bad)?, prefix, false)?;
            LoadedModel::Unet(ImageNet::Diffusers(net), image_shape)
        }
        ModelSpec::Mlp { config, dim, .. } => {
            let cfg: MlpConfig =
                serde_json::from_value(config).map_err(|e| bad(format!("MLP config: {e}")))?;
            LoadedModel::Mlp(ck.load_into(cfg.init(device), prefix, false)?, dim)
        }
    };
    Ok((model, train.precond, ck.meta))
}

/// Load a checkpoint that must hold an image network: the network, its image shape
/// [c, h, w], preconditioning and metadata; an MLP checkpoint is an error naming the file.
pub fn load_image_net(
    path: &Path,
    device: &Device,
) -> Result<(ImageNet, [usize; 3], Precond, CheckpointMeta)> {
    match load_model(path, device)? {
        (LoadedModel::Unet(net, shape), precond, meta) => Ok((net, shape, precond, meta)),
        _ => Err(ScoreError::Checkpoint {
            path: path.to_path_buf(),
            detail: "needs an image (UNet) checkpoint, found an MLP".into(),
        }),
    }
}

/// [`load_image_net`] for commands that need the crate's own UNet (text conditioning,
/// the benches): an EDM network is an error naming the file.
pub fn load_unet(
    path: &Path,
    device: &Device,
) -> Result<(UNet, [usize; 3], Precond, CheckpointMeta)> {
    match load_image_net(path, device)? {
        (ImageNet::Scorelab(net), shape, precond, meta) => Ok((net, shape, precond, meta)),
        (ImageNet::Edm(_) | ImageNet::Diffusers(_), ..) => Err(ScoreError::Checkpoint {
            path: path.to_path_buf(),
            detail: "holds an imported network (EDM or diffusers); this command needs a scorelab UNet (the output of `scorelab train`)".into(),
        }),
    }
}

/// How to condition generated images: class labels and a guidance scale.
#[derive(Debug, Clone, Default)]
pub struct ImageCondition {
    /// Conditioning inputs (`None`: an unconditional network).
    pub cond: Option<Conditioning>,
    /// Classifier-free guidance scale (1 = none; see [`score_core::guidance`]).
    pub guidance: f64,
}

impl ImageCondition {
    /// No conditioning.
    pub fn none() -> Self {
        Self {
            cond: None,
            guidance: 1.0,
        }
    }

    /// Class `class[i]` for image i, as one-hot labels of `num_classes`.
    pub fn classes(class: &[usize], num_classes: usize, guidance: f64, device: &Device) -> Self {
        let mut v = vec![0f32; class.len() * num_classes];
        for (i, &k) in class.iter().enumerate() {
            v[i * num_classes + k] = 1.0;
        }
        let labels = score_core::tensor::from_f32(v, [class.len(), num_classes], device);
        Self {
            cond: Some(Conditioning::labels(labels)),
            guidance,
        }
    }
}

/// Generate images from a UNet: `noise` is unit Gaussian `[B, c, h, w]`, scaled by the
/// grid's first σ here. `on_step` receives (steps done, total steps).
pub fn generate_images<N: ScoreNetwork<4>>(
    net: &N,
    precond: Precond,
    sampler: &Sampler,
    sigmas: &[f64],
    noise: Tensor<4>,
    condition: &ImageCondition,
    mut on_step: impl FnMut(usize, usize),
) -> Result<SampleOutput<4>> {
    let den =
        score_core::guidance::Guided::new(Preconditioned::new(net, precond), condition.guidance);
    let mut done = 0;
    let mut ctx = SampleContext::new().on_step(|s: &score_core::samplers::StepInfo<'_, 4>| {
        done += 1;
        on_step(done, s.total_steps);
    });
    ctx.cond = condition.cond.as_ref();
    sampler.sample(&den, sigmas, noise.mul_scalar(sigmas[0]), &mut ctx)
}

/// The numbers the demo reports for generated images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageMetrics {
    /// Number of generated images.
    pub n_generated: usize,
    /// Sliced W2 (pixel space, 256 projections) from generated to held-out real images.
    pub sliced_w2_to_heldout: f64,
    /// The same between an equally large real sample (from the training images) and the
    /// held-out images: the floor the generated images are compared against.
    pub sliced_w2_real_floor: f64,
    /// Mean nearest-neighbour distance from generated images to the training images.
    pub nn_dist_generated_to_train: f64,
    /// Mean nearest-neighbour distance from held-out images to the training images.
    pub nn_dist_heldout_to_train: f64,
    /// Yoon et al. memorisation rate (ratio 1/3) of generated images against training.
    pub memorization_rate: f64,
    /// Mean and standard deviation of generated pixels (real Fashion-MNIST in [−1, 1]:
    /// about −0.43 and 0.71).
    pub pixel_mean: f64,
    /// See `pixel_mean`.
    pub pixel_std: f64,
}

/// Compare generated images with held-out and training images (all `[n, d]` rows).
pub fn image_metrics(
    generated: &[f64],
    heldout: &[f64],
    train: &[f64],
    d: usize,
) -> Result<ImageMetrics> {
    let n = generated.len() / d;
    let real = &train[..(n * d).min(train.len())];
    let mean_of = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let pm = generated.iter().sum::<f64>() / generated.len() as f64;
    let ps =
        (generated.iter().map(|v| (v - pm).powi(2)).sum::<f64>() / generated.len() as f64).sqrt();
    let held_n = heldout.len() / d;
    Ok(ImageMetrics {
        n_generated: n,
        sliced_w2_to_heldout: metrics::sliced_w2(generated, heldout, d, 256, 0)?,
        sliced_w2_real_floor: metrics::sliced_w2(real, heldout, d, 256, 0)?,
        nn_dist_generated_to_train: mean_of(metrics::nearest_neighbour_distances(
            generated, train, d,
        )?),
        nn_dist_heldout_to_train: mean_of(metrics::nearest_neighbour_distances(
            &heldout[..held_n.min(n) * d],
            train,
            d,
        )?),
        memorization_rate: metrics::memorization_rate(generated, train, d, 1.0 / 3.0)?,
        pixel_mean: pm,
        pixel_std: ps,
    })
}

/// The demo's split of the shipped Fashion-MNIST test images: the first 9 000 for
/// training, the last 1 000 held out for metrics.
pub fn demo_split() -> Result<(ImageDataset, ImageDataset)> {
    let all = ImageDataset::fashion_mnist(None, Split::Test)?;
    let train: Vec<usize> = (0..9000).collect();
    let held: Vec<usize> = (9000..all.num_images()).collect();
    Ok((all.select(&train), all.select(&held)))
}

/// `n` unconditional samples `[n, c, h, w]` of a UNet with Heun on the Karras grid
/// (`steps` levels, σ ∈ [0.002, 80]), 64 at a time; the noise of chunk k comes from
/// `stream_rng(seed, stream, k)`. `on_done` is told how many samples are finished.
#[allow(clippy::too_many_arguments)]
pub fn heun_samples<N: ScoreNetwork<4>>(
    net: &N,
    precond: Precond,
    [c, h, w]: [usize; 3],
    n: usize,
    steps: usize,
    (seed, stream): (u64, u64),
    device: &Device,
    mut on_done: impl FnMut(usize),
) -> Result<Vec<f32>> {
    let sigmas = score_core::sigmas::GridKind::Karras.build(steps, 0.002, 80.0)?;
    let sampler = Sampler::Heun(Default::default());
    let none = ImageCondition::none();
    let mut out = Vec::with_capacity(n * c * h * w);
    for (k, start) in (0..n).step_by(64).enumerate() {
        let b = 64.min(n - start);
        let mut rng = score_core::tensor::stream_rng(seed, stream, k as u64);
        let noise = score_core::tensor::randn([b, c, h, w], &mut rng, device);
        let r = generate_images(net, precond, &sampler, &sigmas, noise, &none, |_, _| {})?;
        out.extend(score_core::tensor::to_vec_f32(r.x)?);
        on_done(start + b);
    }
    Ok(out)
}

/// FID statistics cached under `<cache>/fid/stats/<name>.npz` and keyed by content:
/// the file is used only when it holds `key` ([`score_eval::fid::FidInception::content_key`]
/// of the images and the weights); else (absent, unreadable, written for other images
/// or weights, or before keys existed) `features` (rows `[n, 2048]`) is computed and the
/// file rewritten atomically with the key.
pub fn cached_fid_stats<E: From<score_core::ScoreError>>(
    name: &str,
    key: &str,
    features: impl FnOnce() -> std::result::Result<Vec<f32>, E>,
) -> std::result::Result<score_eval::fid::FeatureStats, E> {
    let dir = score_core::fs::cache_dir().join("fid").join("stats");
    cached_fid_stats_in(&dir, name, key, features)
}

/// [`cached_fid_stats`] in the folder `dir`.
pub fn cached_fid_stats_in<E: From<score_core::ScoreError>>(
    dir: &Path,
    name: &str,
    key: &str,
    features: impl FnOnce() -> std::result::Result<Vec<f32>, E>,
) -> std::result::Result<score_eval::fid::FeatureStats, E> {
    use score_eval::fid::FeatureStats;
    let path = dir.join(format!("{name}.npz"));
    if path.is_file() && FeatureStats::npz_key(&path).ok().flatten().as_deref() == Some(key) {
        return Ok(FeatureStats::load_npz(&path)?);
    }
    let stats = FeatureStats::from_features(&features()?, score_eval::fid::DIM)?;
    std::fs::create_dir_all(dir).map_err(|e| score_core::ScoreError::io(dir, e))?;
    stats.save_npz_keyed(&path, Some(key))?;
    Ok(stats)
}

/// FID statistics of the 10 000 shipped Fashion-MNIST test images, computed once
/// (`batch` images at a time, `progress` told how many are done) and cached as
/// `<cache>/fid/stats/fashion-mnist-test.npz`.
pub fn test_split_fid_stats(
    net: &score_eval::fid::FidInception,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<score_eval::fid::FeatureStats> {
    let d = ImageDataset::fashion_mnist(None, Split::Test)?;
    dataset_fid_stats(net, "fashion-mnist-test", &d, batch, progress)
}

/// FID statistics of the images of `d`, cached as `<cache>/fid/stats/<name>.npz` and
/// keyed by their content and the network's weights ([`cached_fid_stats`]).
pub fn dataset_fid_stats(
    net: &score_eval::fid::FidInception,
    name: &str,
    d: &ImageDataset,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<score_eval::fid::FeatureStats> {
    let [c, h, w] = d.image_shape;
    let shape = [d.num_images(), c, h, w];
    let bytes = score_eval::fid::quantize_signed(&d.pixels)?;
    let key = net.content_key(&bytes, shape);
    cached_fid_stats(name, &key, || net.features(&bytes, shape, batch, progress))
}

/// Train the demo UNet on [`demo_split`]'s training part; writes (and with `resume`
/// continues) `<out>/checkpoint.safetensors` and `<out>/train.jsonl`. With `keep_every`,
/// checkpoints are written (and kept, see [`TrainOutput::keep_checkpoints`]) every that
/// many steps.
pub fn train_demo_unet(
    steps: usize,
    seed: u64,
    out: &Path,
    progress: bool,
    device: &Device,
    resume: bool,
    keep_every: Option<usize>,
) -> Result<TrainResult<UNet>> {
    std::fs::create_dir_all(out).map_err(|e| ScoreError::io(out, e))?;
    let (train_set, _) = demo_split()?;
    let tdev = device.clone().autodiff();
    tdev.seed(seed);
    let unet = demo_unet_config();
    let mut cfg = demo_train_config(steps, seed);
    if let Some(k) = keep_every {
        cfg.checkpoint_every = k;
    }
    cfg.precond = Precond::edm(score_core::precond::sigma_data_of(
        train_set.pixels.iter().map(|&v| v as f64),
    ));
    let spec = ModelSpec::unet(&unet, train_set.image_shape, "fashion-mnist t10k[0..9000]");
    let ck = out.join("checkpoint.safetensors");
    let resume_from = if resume && ck.exists() {
        Some(CheckpointFile::read(&ck)?)
    } else {
        None
    };
    let o = TrainOutput {
        keep_checkpoints: keep_every.is_some(),
        checkpoint: Some(ck),
        log: Some(out.join("train.jsonl")),
        progress,
        stop_after: None,
        replicas: Vec::new(),
    };
    let data = ImageData {
        images: train_set,
        use_labels: false,
    };
    train(
        unet.init(&tdev),
        &data,
        &cfg,
        spec.to_json(),
        &o,
        resume_from.as_ref(),
    )
}

/// Write a sampling-only copy of a checkpoint: the EMA weights and the metadata, without
/// the raw weights and optimizer state (a third of the size).
pub fn export_ema(checkpoint: &Path, out: &Path, device: &Device) -> Result<()> {
    let (model, _, meta) = load_model(checkpoint, device)?;
    match model {
        LoadedModel::Unet(ImageNet::Scorelab(net), _) => {
            save_checkpoint::<UNet>(out, None, Some(&net), None, &meta)
        }
        LoadedModel::Unet(ImageNet::Edm(net), _) => {
            save_checkpoint(out, None, Some(&net), None, &meta)
        }
        LoadedModel::Unet(ImageNet::Diffusers(net), _) => {
            save_checkpoint(out, None, Some(&net), None, &meta)
        }
        LoadedModel::Mlp(net, _) => save_checkpoint(out, None, Some(&net), None, &meta),
    }
}

/// The shipped demo checkpoint.
pub fn shipped_checkpoint() -> std::path::PathBuf {
    score_io::images::shipped_data_dir().join("checkpoints/fashion-mnist-unet.safetensors")
}

/// Refuse `n = 0` and a sample count whose working memory exceeds the machine's (an
/// estimate: the sampler's states, and the network's activations at full resolution,
/// about 24 maps of the widest level live at once, plus attention). Names `--n`.
pub fn ensure_sampling_fits(model: &LoadedModel, n: usize) -> Result<()> {
    if n == 0 {
        return Err(ScoreError::invalid("--n", "need at least one sample"));
    }
    ensure_passes_fit(model, n as u128, "--n", "use a smaller --n")
}

/// Refuse `n` image-sized network passes whose working memory exceeds the budget (the
/// estimate of [`ensure_sampling_fits`], `score_nn::unet::pass_bytes` per image), naming
/// `flag`.
pub fn ensure_passes_fit(model: &LoadedModel, n: u128, flag: &str, hint: &str) -> Result<()> {
    let bytes = match model {
        LoadedModel::Unet(net, chw) => {
            n.saturating_mul(score_nn::unet::pass_bytes(*chw, net.widest_channels()))
        }
        LoadedModel::Mlp(_, d) => n.saturating_mul(8 * 4 * (*d as u128).max(256)),
    };
    score_core::limits::ensure_fits(flag, bytes, hint)
}

#[cfg(test)]
mod tests {

    /// Issue 26: a cached statistics file was trusted by its name; a file swapped in
    /// from other images, one written before keys, or a damaged one must be recomputed.
    #[test]
    fn cached_fid_statistics_serve_only_the_content_they_were_computed_from() {
        use score_eval::fid::DIM;
        let dir = tempfile::tempdir().unwrap();
        let rows = |v: f32| -> Vec<f32> {
            (0..3 * DIM)
                .map(|i| v + (i % 7) as f32 * 0.1 + (i / DIM) as f32)
                .collect()
        };
        let calls = std::cell::Cell::new(0);
        let get = |key: &str, v: f32| {
            cached_fid_stats_in::<score_core::ScoreError>(dir.path(), "x", key, || {
                calls.set(calls.get() + 1);
                Ok(rows(v))
            })
            .unwrap()
        };
        let a = get("key-a", 0.0);
        assert_eq!(calls.get(), 1);
        assert_eq!(
            get("key-a", 9.0).mu,
            a.mu,
            "the same key is served from the file"
        );
        assert_eq!(calls.get(), 1);
        let b = get("key-b", 1.0);
        assert_eq!(calls.get(), 2);
        assert_ne!(a.mu, b.mu);
        let file = dir.path().join("x.npz");
        // Another content's file (its own key inside) copied over this one.
        let other = dir.path().join("other.npz");
        a.save_npz_keyed(&other, Some("key-a")).unwrap();
        std::fs::copy(&other, &file).unwrap();
        assert_eq!(get("key-b", 1.0).mu, b.mu);
        assert_eq!(calls.get(), 3);
        // Written before keys existed, and damaged: both recomputed.
        a.save_npz(&file).unwrap();
        get("key-b", 1.0);
        assert_eq!(calls.get(), 4);
        std::fs::write(&file, b"junk").unwrap();
        get("key-b", 1.0);
        assert_eq!(calls.get(), 5);
    }
    use super::*;

    #[test]
    fn the_unet_layout_follows_the_resolution() {
        let demo = demo_unet_config();
        let at28 = unet_config_for(28, 1, 16);
        assert_eq!(
            (at28.channel_mult, at28.attn_resolutions),
            (demo.channel_mult, demo.attn_resolutions),
            "the shipped 28×28 network is unchanged"
        );
        for (res, mult, attn) in [
            (16, vec![1, 2, 2], 4),
            (32, vec![1, 2, 2], 8),
            (64, vec![1, 2, 2, 2], 8),
            (128, vec![1, 2, 2, 2, 2], 8),
            (96, vec![1, 2, 2, 2, 2], 6),
            (36, vec![1, 2, 2], 9),
        ] {
            let u = unet_config_for(res, 3, 32);
            assert_eq!(
                (u.channel_mult.clone(), u.attn_resolutions.clone()),
                (mult, vec![attn]),
                "{res}"
            );
            u.validate().unwrap();
        }
    }

    #[test]
    fn edm_layouts_are_edm_published_ones() {
        assert_eq!(edm_layout_for("ddpmpp", 32), (vec![2, 2, 2], 16));
        assert_eq!(edm_layout_for("ncsnpp", 64), (vec![1, 2, 2, 2], 16));
        assert_eq!(edm_layout_for("adm", 64), (vec![1, 2, 3, 4], 16));
    }
}
