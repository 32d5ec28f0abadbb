//! `scorelab distill`: distil a checkpoint into a one-step generator (plain score
//! distillation or DisBack), resumable, writing `OUT/generator.safetensors`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use disback::config::{DistillConfig, GradientForm, Method, Order, Spacing};
use disback::distill::{Distiller, RunOutput};
use disback::teacher::Teacher;
use score_nn::mlp::MlpConfig;
use score_nn::network::ImageNet;
use score_nn::precond::ScoreNetwork;
use score_nn::unet::UNetConfig;
use score_train::pipeline::{self, LoadedModel, ModelSpec};

use crate::common::{Common, device, emit};

#[derive(Args)]
pub(crate) struct DistillArgs {
    /// Teacher checkpoint (any `scorelab train` checkpoint or sampling export; the EMA
    /// weights are used when present).
    #[arg(long)]
    teacher: PathBuf,
    /// baseline (plain score distillation) or disback.
    #[arg(long, default_value = "disback")]
    method: String,
    /// Generator steps (Stage 2 for DisBack).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// DisBack: N, the checkpoints of the degradation path after the teacher.
    #[arg(long, default_value_t = 8)]
    path_checkpoints: usize,
    /// DisBack: M, Stage 1's DSM steps.
    #[arg(long, default_value_t = 200)]
    record_steps: usize,
    /// DisBack: log (default) or linear spacing of the path checkpoints.
    #[arg(long, default_value = "log")]
    spacing: String,
    /// DisBack: generator steps per target on the path (K).
    #[arg(long, default_value_t = 10)]
    switch_every: usize,
    /// DisBack: the target order: backward (DisBack), forward, shuffled,
    /// warm-start-only or interpolate (the spec's controls).
    #[arg(long, default_value = "backward")]
    order: String,
    /// dmd2 (default) or vsd: the generator gradient's form.
    #[arg(long, default_value = "dmd2")]
    gradient: String,
    /// Fake-score updates per generator update.
    #[arg(long, default_value_t = 5)]
    fake_updates: usize,
    /// Batch of the generator and fake-score updates.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Generator learning rate (AdamW, weight decay 0.01, clipping at 10).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Fake-score learning rate [default: --lr].
    #[arg(long)]
    fake_lr: Option<f64>,
    /// Start the generator from a fresh initialisation instead of the teacher's weights.
    #[arg(long)]
    fresh: bool,
    /// Checkpoint every this many generator steps (and at the end).
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// Output folder; a folder holding a run with the same settings is resumed.
    #[arg(long)]
    out: PathBuf,
}

fn parse<T: serde::de::DeserializeOwned>(flag: &str, v: &str, allowed: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .map_err(|_| anyhow::anyhow!("{flag}: '{v}' is not one of {allowed}"))
}

fn config(a: &DistillArgs, precond: score_core::Precond, seed: u64) -> Result<DistillConfig> {
    let method: Method = parse("--method", &a.method, "baseline, disback")?;
    let mut cfg = DistillConfig::new(method, a.steps, precond, seed);
    cfg.gradient = parse::<GradientForm>("--gradient", &a.gradient, "dmd2, vsd")?;
    cfg.order = parse::<Order>(
        "--order",
        &a.order,
        "backward, forward, shuffled, warm-start-only, interpolate",
    )?;
    cfg.path.spacing = parse::<Spacing>("--spacing", &a.spacing, "log, linear")?;
    cfg.path.checkpoints = a.path_checkpoints;
    cfg.path.steps = a.record_steps;
    cfg.switch_every = a.switch_every;
    cfg.fake_updates = a.fake_updates;
    for t in [&mut cfg.generator, &mut cfg.fake] {
        t.batch_size = a.batch;
        t.checkpoint_every = a.checkpoint_every;
        t.log_every = 10.min(a.steps);
    }
    cfg.generator.lr = a.lr;
    cfg.fake.lr = a.fake_lr.unwrap_or(a.lr);
    cfg.validate()?;
    Ok(cfg)
}

fn run<const D: usize, N: ScoreNetwork<D>>(
    net: N,
    fresh: Option<N>,
    precond: score_core::Precond,
    shape: &[usize],
    spec: serde_json::Value,
    cfg: &DistillConfig,
    out: &RunOutput,
) -> Result<(usize, usize)> {
    // Stage 1 keeps each path checkpoint as a network in memory, beside the teacher,
    // the generator and the fake score with their Adam moments (seven copies).
    score_core::limits::ensure_values_fit(
        "--path-checkpoints",
        cfg.path.checkpoints as u128 + 7,
        net.num_params() as u128 * 4,
        "use fewer --path-checkpoints",
    )?;
    let g0 = fresh.unwrap_or_else(|| net.clone());
    let teacher = Teacher::network(net, precond);
    let mut d = Distiller::new(&teacher, g0, shape, cfg, spec, out)?;
    d.run(out, &mut |_, _| Ok(()))?;
    d.save(out)?;
    Ok((d.step(), d.updates()))
}

pub(crate) fn cmd_distill(c: &Common, a: &DistillArgs) -> Result<()> {
    let dev = device(&c.device)?.autodiff();
    dev.seed(c.seed());
    let (model, precond, meta) = pipeline::load_model(&a.teacher, &dev)
        .with_context(|| format!("loading the teacher {}", a.teacher.display()))?;
    let cfg = config(a, precond, c.seed())?;
    // A step runs the generator, the fake score and the teacher on the batch, with
    // the backward passes of the first two: about nine sampling passes' memory.
    crate::common::ensure_passes_fit(
        &model,
        (a.batch as u128).saturating_mul(9),
        "--batch",
        "use a smaller --batch",
    )?;
    let _lock = score_core::fs::RunLock::acquire(&a.out)?;
    let spec = meta.config["extra"].clone();
    let out = RunOutput {
        dir: Some(a.out.clone()),
        progress: !c.json,
        stop_after: None,
    };
    let t0 = Instant::now();
    let (steps, updates) = run_model(model, spec, (a, &dev, precond), &cfg, &out)?;
    let secs = t0.elapsed().as_secs_f64();
    let generator = a.out.join("generator.safetensors");
    emit(
        c.json,
        serde_json::json!({"teacher": a.teacher, "method": cfg.method, "order": cfg.order, "steps": steps, "network_updates": updates, "seconds": secs, "generator": generator}),
        || {
            outln!(
                "{:?} distillation: {steps} generator steps ({updates} network updates) in {secs:.1} s -> {}",
                cfg.method,
                generator.display()
            )
        },
    );
    Ok(())
}

/// EDM's network of a checkpoint's `config.extra.config`, freshly initialised.
fn edm_init(
    config: serde_json::Value,
    dev: &burn::tensor::Device,
) -> Result<score_nn::edm::EdmUNet> {
    let cfg: score_nn::edm::EdmNetConfig =
        serde_json::from_value(config).context("config.extra.config: EDM network")?;
    cfg.init(dev)
        .map_err(|e| anyhow::anyhow!("config.extra.config: {e}"))
}

/// Stage 1 and the distillation for the teacher's network kind; `--fresh` starts the
/// generator from the teacher's architecture initialised from the seed.
fn run_model(
    model: LoadedModel,
    spec: serde_json::Value,
    (a, dev, precond): (&DistillArgs, &burn::tensor::Device, score_core::Precond),
    cfg: &DistillConfig,
    out: &RunOutput,
) -> Result<(usize, usize)> {
    let dev = dev.clone();
    // --fresh: the teacher's architecture, initialised from the seed.
    let bad = |e: serde_json::Error| anyhow::anyhow!("{}: config.extra: {e}", a.teacher.display());
    let spec_of: ModelSpec = serde_json::from_value(spec.clone()).map_err(bad)?;
    Ok(match (model, spec_of) {
        (
            LoadedModel::Unet(ImageNet::Scorelab(net), [ch, h, w]),
            ModelSpec::Unet { config, .. },
        ) => {
            let fresh = a
                .fresh
                .then(|| UNetConfig::from_json(config).map(|c| c.init(&dev)));
            let fresh = fresh.transpose().map_err(bad)?;
            run(net, fresh, precond, &[ch, h, w], spec, cfg, out)?
        }
        (LoadedModel::Unet(ImageNet::Edm(net), [ch, h, w]), ModelSpec::Edm { config, .. }) => {
            let fresh = match a.fresh {
                true => {
                    Some(edm_init(config, &dev).with_context(|| a.teacher.display().to_string())?)
                }
                false => None,
            };
            run(net, fresh, precond, &[ch, h, w], spec, cfg, out)?
        }
        (LoadedModel::Mlp(net, d), ModelSpec::Mlp { config, .. }) => {
            let fresh = a
                .fresh
                .then(|| serde_json::from_value::<MlpConfig>(config).map(|c| c.init(&dev)));
            let fresh = fresh.transpose().map_err(bad)?;
            run(net, fresh, precond, &[d], spec, cfg, out)?
        }
        (
            LoadedModel::Unet(ImageNet::Diffusers(net), [ch, h, w]),
            ModelSpec::Diffusers { config, .. },
        ) => {
            let fresh = match a.fresh {
                true => {
                    let cfg: score_nn::diffusers::UNet2DConfig =
                        serde_json::from_value(config).map_err(bad)?;
                    Some(cfg.init(&dev).map_err(anyhow::Error::msg)?)
                }
                false => None,
            };
            run(net, fresh, precond, &[ch, h, w], spec, cfg, out)?
        }
        _ => bail!(
            "{}: the network description does not match its weights",
            a.teacher.display()
        ),
    })
}
