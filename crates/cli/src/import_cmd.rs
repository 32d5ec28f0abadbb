//! `scorelab import edm` (EDM networks into scorelab checkpoints) and `scorelab
//! denoise` (D(x; σ) of any image checkpoint on given inputs).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::common::{Common, device, emit, ensure_not_input};
use score_nn::Preconditioned;
use score_train::pipeline::{self, LoadedModel};

/// `scorelab import …`.
#[derive(Subcommand)]
pub enum ImportCmd {
    /// An EDM network: a `network-snapshot-*.pkl` (read without Python; nothing in it
    /// is executed), or a safetensors state dict of `EDMPrecond` (`model.*`) with
    /// `--config` naming EDM's network kwargs and the precond.
    Edm(ImportEdmArgs),
    /// diffusers' UNet2DModel: DIR holds config.json and
    /// diffusion_pytorch_model.safetensors (or DIR/unet/ does); the β schedule and the
    /// prediction type come from scheduler_config.json beside it (or DIR/scheduler/),
    /// else DDPM's (linear 1e-4 → 0.02 over 1000 steps, ε), and the flags override them.
    Diffusers(ImportDiffusersArgs),
}

/// `scorelab import diffusers`.
#[derive(Args)]
pub struct ImportDiffusersArgs {
    /// The model folder.
    pub dir: PathBuf,
    /// The scorelab checkpoint to write.
    #[arg(long)]
    pub out: PathBuf,
    /// linear, scaled_linear or squaredcos_cap_v2.
    #[arg(long)]
    pub beta_schedule: Option<String>,
    /// β of the first step.
    #[arg(long)]
    pub beta_start: Option<f64>,
    /// β of the last step.
    #[arg(long)]
    pub beta_end: Option<f64>,
    /// Training steps of the schedule.
    #[arg(long)]
    pub num_train_timesteps: Option<usize>,
    /// epsilon or v_prediction.
    #[arg(long)]
    pub prediction_type: Option<String>,
}

/// `scorelab import edm`.
#[derive(Args)]
pub struct ImportEdmArgs {
    /// The snapshot (`.pkl`) or state dict (`.safetensors`).
    pub source: PathBuf,
    /// For a state dict: JSON `{"network": {EDM kwargs}, "precond": {"class_name":
    /// "EDMPrecond", "sigma_data": 0.5}}`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The scorelab checkpoint to write.
    #[arg(long)]
    pub out: PathBuf,
    /// For a snapshot: which network to take (`ema`, EDM's sampling weights).
    #[arg(long, default_value = "ema")]
    pub key: String,
}

/// `scorelab denoise`.
#[derive(Args)]
pub struct DenoiseArgs {
    /// An image checkpoint (trained or imported).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Inputs `[N, C, H, W]` (.npy, any float or int dtype).
    #[arg(long)]
    pub x: PathBuf,
    /// σ for every input.
    #[arg(long)]
    pub sigma: f64,
    /// Class index for a class-conditional network (one-hot).
    #[arg(long)]
    pub class: Option<usize>,
    /// Where to write D(x; σ) (.npy, float32).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_import(c: &Common, cmd: &ImportCmd) -> Result<()> {
    match cmd {
        ImportCmd::Edm(a) => import_edm(c, a),
        ImportCmd::Diffusers(a) => import_diffusers(c, a),
    }
}

fn import_diffusers(c: &Common, a: &ImportDiffusersArgs) -> Result<()> {
    ensure_not_input(&a.out, "--out", &[(&a.dir, "DIR")])?;
    let dev = device(&c.device)?;
    let t0 = Instant::now();
    let overrides = score_train::import::SchedulerOptions {
        beta_schedule: a.beta_schedule.clone(),
        beta_start: a.beta_start,
        beta_end: a.beta_end,
        num_train_timesteps: a.num_train_timesteps,
        prediction_type: a.prediction_type.clone(),
    };
    let imported = score_train::import::import_diffusers(&a.dir, overrides, &dev)?;
    let source = std::path::absolute(&a.dir).unwrap_or(a.dir.clone());
    score_train::import::write_diffusers_checkpoint(
        &imported,
        &a.out,
        &source.display().to_string(),
    )?;
    let cfg = &imported.config;
    let side = cfg.sample_size.unwrap_or(0);
    emit(
        c.json,
        serde_json::json!({"source": a.dir, "out": a.out, "tensors": imported.tensors,
            "config": cfg, "precond": imported.precond, "scheduler": imported.scheduler,
            "seconds": t0.elapsed().as_secs_f64()}),
        || {
            outln!(
                "imported UNet2DModel ({} tensors, {}×{side}×{side}, {}) -> {}",
                imported.tensors,
                cfg.in_channels,
                match &imported.scheduler {
                    Some(p) => format!("schedule from {}", p.display()),
                    None => "DDPM's schedule".into(),
                },
                a.out.display()
            )
        },
    );
    Ok(())
}

fn import_edm(c: &Common, a: &ImportEdmArgs) -> Result<()> {
    let config = a.config.as_deref().map(|p| (p, "--config"));
    ensure_not_input(
        &a.out,
        "--out",
        &[Some((&*a.source, "SOURCE")), config]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
    )?;
    let dev = device(&c.device)?;
    let t0 = Instant::now();
    let is_pkl = a.source.extension().is_some_and(|e| e == "pkl");
    let imported = match (is_pkl, &a.config) {
        (true, None) => score_train::edm_pickle::import_edm_pickle(&a.source, &a.key, &dev)?,
        (true, Some(_)) => bail!("--config: a .pkl snapshot describes itself; leave --config out"),
        (false, Some(cfg)) => score_train::import::import_edm_safetensors(&a.source, cfg, &dev)?,
        (false, None) => bail!(
            "--config: {} is a state dict; name the JSON with EDM's network kwargs and precond (see docs/own-models.md)",
            a.source.display()
        ),
    };
    let source = std::path::absolute(&a.source).unwrap_or(a.source.clone());
    score_train::import::write_edm_checkpoint(&imported, &a.out, &source.display().to_string())?;
    let net = &imported.description.network;
    emit(
        c.json,
        serde_json::json!({"source": a.source, "out": a.out, "tensors": imported.tensors,
            "network": net, "precond": imported.description.precond, "seconds": t0.elapsed().as_secs_f64()}),
        || {
            outln!(
                "imported {} ({} tensors, {}×{}×{}) -> {}",
                net.model_type,
                imported.tensors,
                net.in_channels,
                net.img_resolution,
                net.img_resolution,
                a.out.display()
            )
        },
    );
    Ok(())
}

pub fn run_denoise(c: &Common, a: &DenoiseArgs) -> Result<()> {
    ensure_not_input(
        &a.out,
        "--out",
        &[(&a.checkpoint, "--checkpoint"), (&a.x, "--x")],
    )?;
    let dev = device(&c.device)?;
    if !(a.sigma.is_finite() && a.sigma > 0.0) {
        bail!("--sigma: needs a finite σ > 0, found {}", a.sigma);
    }
    let (model, precond, _) = pipeline::load_model(&a.checkpoint, &dev)?;
    let LoadedModel::Unet(net, chw) = &model else {
        bail!(
            "{}: denoise takes an image checkpoint",
            a.checkpoint.display()
        );
    };
    let x = score_io::npy::read_npy_finite(&a.x)?;
    let n = x.rows_of(&a.x, chw.iter().product())?;
    if x.shape.len() != 4 || x.shape[1..] != chw[..] {
        bail!(
            "--x: {} has shape {:?}, the network takes [N, {}, {}, {}]",
            a.x.display(),
            x.shape,
            chw[0],
            chw[1],
            chw[2]
        );
    }
    let shape = [n, chw[0], chw[1], chw[2]];
    crate::common::ensure_passes_fit(&model, n as u128, "--x", "denoise fewer inputs at once")?;
    let xt = score_core::tensor::from_f64(&x.data, shape, &dev);
    let cond = class_condition(net.label_dim(), a.class, n, &dev)?;
    let den = Preconditioned::new(net, precond);
    let sigma = score_core::tensor::sigma_tensor(a.sigma, n, &dev);
    let d = score_core::denoiser::Denoiser::denoise(&den, xt, sigma, cond.as_ref());
    score_core::tensor::ensure_finite(
        &d,
        "denoiser",
        "inputs or σ far out of the network's range",
    )?;
    let values = score_core::tensor::to_vec_f32(d)?;
    let bytes = score_io::npy::npy_f32_bytes(&shape, &values)?;
    score_core::fs::write_atomic(&a.out, &bytes)
        .with_context(|| format!("writing {}", a.out.display()))?;
    emit(
        c.json,
        serde_json::json!({"checkpoint": a.checkpoint, "n": n, "sigma": a.sigma, "out": a.out}),
        || outln!("D(x; σ={}) of {n} inputs -> {}", a.sigma, a.out.display()),
    );
    Ok(())
}

/// One-hot labels of `class` for a class-conditional network; none otherwise.
fn class_condition(
    label_dim: usize,
    class: Option<usize>,
    n: usize,
    dev: &burn::tensor::Device,
) -> Result<Option<score_core::denoiser::Conditioning>> {
    match (label_dim, class) {
        (0, None) => Ok(None),
        (0, Some(_)) => bail!("--class: the network is not class-conditional"),
        (k, None) => bail!("--class: the network is class-conditional ({k} classes); name one"),
        (k, Some(i)) if i >= k => bail!("--class {i}: the network has {k} classes (0..{k})"),
        (k, Some(i)) => {
            let mut v = vec![0f32; n * k];
            (0..n).for_each(|r| v[r * k + i] = 1.0);
            let labels = score_core::tensor::from_f32(v, [n, k], dev);
            Ok(Some(score_core::denoiser::Conditioning::labels(labels)))
        }
    }
}
