//! What a training run is given ([`TrainSpec`]) and the settings it runs with: a new
//! run's from the spec with the demo's defaults, a resumed run's from its checkpoint
//! with the changes a resume may make (learning rate, clipping, steps, schedule,
//! accumulation, checkpoint cadence); everything else restated must agree.

use std::path::{Path, PathBuf};

use score_train::checkpoint::CheckpointFile;
use score_train::pipeline;
use score_train::run::{RunMode, fixed_on_resume};
use score_train::train::{BatchOrder, LrSchedule, RunConfig, TrainConfig};

use crate::error::{Result, invalid};
use crate::record::{CliExtra, RunRecord, no_cond, scorelab_arch};

/// A training run. `None` settings take the demo's defaults for a new run and the
/// checkpoint's on resume; messages name each setting by its `scorelab train` flag.
#[derive(Debug, Clone, Default)]
pub struct TrainSpec {
    /// The run folder.
    pub out: PathBuf,
    /// New, resume or overwrite.
    pub mode: RunMode,
    /// Seed [0].
    pub seed: Option<u64>,
    /// A data set name, a `.npy` file or an image folder [fashion-mnist-test].
    pub data: Option<String>,
    /// The folder of Fashion-MNIST's IDX files.
    pub data_dir: Option<PathBuf>,
    /// Add x-flipped copies of every image.
    pub xflip: bool,
    /// Resize and centre-crop images to N × N.
    pub resolution: Option<usize>,
    /// A class-balanced subset of this many images [0: all].
    pub subset: Option<usize>,
    /// The network's base width [32].
    pub channels: Option<usize>,
    /// `none` or `class` [none].
    pub cond: Option<String>,
    /// The augmentation objective, where stated (`Some(None)`: stated as none).
    pub augment: Option<Option<scoreaug::Augment>>,
    /// `scorelab`, `ddpmpp`, `ncsnpp` or `adm` [scorelab].
    pub arch: Option<String>,
    /// Residual blocks per level of an EDM network [2].
    pub blocks: Option<usize>,
    /// Total optimisation steps [2000].
    pub steps: Option<usize>,
    /// Minibatch size.
    pub batch_size: Option<usize>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Gradient clipping: 0 off, else the global-norm bound.
    pub grad_clip: Option<f64>,
    /// Steps between checkpoints.
    pub checkpoint_every: Option<usize>,
    /// Keep every checkpoint written.
    pub keep_checkpoints: bool,
    /// AdamW weight decay.
    pub weight_decay: Option<f64>,
    /// Adam's β₁, β₂.
    pub adam_betas: Option<[f64; 2]>,
    /// The learning-rate schedule.
    pub lr_schedule: Option<LrSchedule>,
    /// Micro-batches per step.
    pub grad_accumulation: Option<usize>,
    /// How batches are drawn.
    pub batches: Option<BatchOrder>,
    /// Condition dropout [0.1 with classes].
    pub label_dropout: Option<f64>,
    /// EDM's σ_data [the data's standard deviation].
    pub sigma_data: Option<f64>,
    /// Draw the training progress bar.
    pub progress: bool,
    /// Data parallelism: devices besides `train_run`'s that share each batch's
    /// micro-batches (a new run's `grad_accumulation` then defaults to the device count).
    pub replicas: Vec<burn::tensor::Device>,
}

/// `grad_clip`: 0 is off, a positive value the bound; NaN, infinity and negative
/// values are refused (NaN used to mean off).
fn clip_of(g: f64) -> Result<Option<f64>> {
    match g {
        0.0 => Ok(None),
        g if g > 0.0 && g.is_finite() => Ok(Some(g)),
        g => Err(invalid(format!(
            "--grad-clip {g}: must be 0 (off) or positive and finite"
        ))),
    }
}

/// A data argument as recorded: a path that exists is made absolute, so that a resume
/// finds it from any folder; a data set name stays as given.
pub fn data_name(given: &str) -> String {
    let p = Path::new(given);
    match p.exists() {
        true => std::path::absolute(p).map_or(given.into(), |a| a.display().to_string()),
        false => given.into(),
    }
}

/// The run's settings: from the spec, or on resume from the checkpoint with the
/// changes the spec may make; on resume also a line saying what changed.
pub fn settings(
    spec: &TrainSpec,
    ck_path: &Path,
    resume: Option<&CheckpointFile>,
) -> Result<(TrainConfig, RunRecord, Option<String>)> {
    let Some(ck) = resume else {
        let (cfg, rec) = fresh_settings(spec)?;
        return Ok((cfg, rec, None));
    };
    let RunConfig {
        train: mut cfg,
        extra: CliExtra { cli: rec },
        ..
    } = ck.meta.config_as::<RunConfig<CliExtra>>(ck_path).map_err(|e| {
        invalid(format!(
            "{e} (config.train and config.extra.cli are written by `scorelab train`; a checkpoint without them cannot be resumed from the CLI)"
        ))
    })?;
    fixed_on_resume("--seed", spec.seed, ck.meta.seed, ck_path)?;
    cfg.batch_size = fixed_on_resume("--batch-size", spec.batch_size, cfg.batch_size, ck_path)?;
    fixed_on_resume(
        "--sigma-data",
        spec.sigma_data,
        cfg.precond.sigma_data(),
        ck_path,
    )?;
    let rec = resumed_record(spec, rec, ck_path)?;
    if let Some(asked) = &spec.augment {
        let json = |x: &Option<scoreaug::Augment>| serde_json::to_string(x).unwrap_or_default();
        if json(asked) != json(&rec.augment) {
            return Err(invalid(format!(
                "--augment/--aug-*: {} was trained with {}, and --resume cannot change it",
                ck_path.display(),
                json(&rec.augment)
            )));
        }
    }
    check_fixed_optimiser(spec, &cfg, ck_path)?;
    let changes = apply_changes(spec, &mut cfg)?;
    let note = format!(
        "resuming {} at step {}{}",
        ck_path.display(),
        ck.meta.step,
        if changes.is_empty() {
            String::new()
        } else {
            format!(" with {}", changes.join(", "))
        }
    );
    Ok((cfg, rec, Some(note)))
}

/// The run record on resume: the checkpoint's, with each data and network setting
/// either left out or restated as it was.
fn resumed_record(spec: &TrainSpec, rec: RunRecord, ck_path: &Path) -> Result<RunRecord> {
    if let Some(d) = &spec.data_dir
        && std::path::absolute(d).ok() != rec.data_dir
    {
        return Err(invalid(format!(
            "--data-dir {}: {} was trained on {:?}, and --resume cannot change it",
            d.display(),
            ck_path.display(),
            rec.data_dir
        )));
    }
    if let Some(n) = spec.resolution.filter(|&n| Some(n) != rec.resolution) {
        return Err(invalid(format!(
            "--resolution {n}: {} was trained at {:?}, and --resume cannot change it",
            ck_path.display(),
            rec.resolution
        )));
    }
    Ok(RunRecord {
        data: fixed_on_resume(
            "--data",
            spec.data.as_deref().map(data_name),
            data_name(&rec.data),
            ck_path,
        )?,
        xflip: fixed_on_resume("--xflip", spec.xflip.then_some(true), rec.xflip, ck_path)?,
        subset: fixed_on_resume("--subset", spec.subset, rec.subset, ck_path)?,
        channels: fixed_on_resume("--channels", spec.channels, rec.channels, ck_path)?,
        cond: fixed_on_resume("--cond", spec.cond.clone(), rec.cond, ck_path)?,
        arch: fixed_on_resume("--arch", spec.arch.clone(), rec.arch, ck_path)?,
        blocks: fixed_on_resume("--blocks", spec.blocks, rec.blocks, ck_path)?,
        ..rec
    })
}

/// A new run's settings: the demo's training settings with the spec applied.
fn fresh_settings(spec: &TrainSpec) -> Result<(TrainConfig, RunRecord)> {
    let mut cfg = pipeline::demo_train_config(spec.steps.unwrap_or(2000), spec.seed.unwrap_or(0));
    cfg.batch_size = spec.batch_size.unwrap_or(cfg.batch_size);
    cfg.lr = spec.lr.unwrap_or(cfg.lr);
    cfg.grad_clip = spec.grad_clip.map_or(Ok(cfg.grad_clip), clip_of)?;
    cfg.checkpoint_every = spec.checkpoint_every.unwrap_or(cfg.checkpoint_every);
    cfg.weight_decay = spec.weight_decay.unwrap_or(cfg.weight_decay);
    cfg.adam_betas = spec.adam_betas.unwrap_or(cfg.adam_betas);
    cfg.lr_schedule = spec.lr_schedule.unwrap_or(cfg.lr_schedule);
    let devices = 1 + spec.replicas.len();
    cfg.grad_accumulation = spec
        .grad_accumulation
        .unwrap_or(cfg.grad_accumulation.max(devices));
    cfg.batches = spec.batches.unwrap_or(cfg.batches);
    let cond = spec.cond.clone().unwrap_or_else(no_cond);
    if !matches!(cond.as_str(), "none" | "class") {
        return Err(invalid(format!(
            "--cond: '{cond}' is neither none nor class"
        )));
    }
    cfg.label_dropout = match (cond.as_str(), spec.label_dropout) {
        ("none", Some(_)) => return Err(invalid("--label-dropout needs --cond class")),
        (_, p) => p.unwrap_or(if cond == "class" { 0.1 } else { 0.0 }),
    };
    let data_dir = match &spec.data_dir {
        Some(d) => Some(std::path::absolute(d).map_err(|e| score_core::ScoreError::io(d, e))?),
        None => None,
    };
    let rec = RunRecord {
        data: data_name(spec.data.as_deref().unwrap_or("fashion-mnist-test")),
        data_dir,
        fingerprint: None,
        xflip: spec.xflip,
        resolution: spec.resolution,
        subset: spec.subset.unwrap_or(0),
        channels: spec.channels.unwrap_or(32),
        cond,
        augment: spec.augment.clone().flatten(),
        arch: spec.arch.clone().unwrap_or_else(scorelab_arch),
        blocks: spec.blocks.unwrap_or(2),
        layout_by_resolution: true,
    };
    check_network(spec, &rec)?;
    Ok((cfg, rec))
}

/// The network settings of a new run: a known architecture, blocks for EDM's only.
fn check_network(spec: &TrainSpec, rec: &RunRecord) -> Result<()> {
    if !matches!(rec.arch.as_str(), "scorelab" | "ddpmpp" | "ncsnpp" | "adm") {
        return Err(invalid(format!(
            "--arch: '{}' is not scorelab, ddpmpp, ncsnpp or adm",
            rec.arch
        )));
    }
    if rec.blocks == 0 {
        return Err(invalid("--blocks: must be at least 1"));
    }
    if rec.arch == "scorelab" && spec.blocks.is_some() {
        return Err(invalid(
            "--blocks: sets an EDM network's blocks per level; give --arch ddpmpp, ncsnpp or adm",
        ));
    }
    Ok(())
}

/// On resume, the optimiser settings that cannot change (label dropout, weight decay,
/// Adam's betas, the batch order) must be left out or restated as they were.
fn check_fixed_optimiser(spec: &TrainSpec, cfg: &TrainConfig, ck_path: &Path) -> Result<()> {
    fixed_on_resume(
        "--label-dropout",
        spec.label_dropout,
        cfg.label_dropout,
        ck_path,
    )?;
    fixed_on_resume(
        "--weight-decay",
        spec.weight_decay,
        cfg.weight_decay,
        ck_path,
    )?;
    let fmt = |b: [f64; 2]| format!("{},{}", b[0], b[1]);
    fixed_on_resume(
        "--adam-betas",
        spec.adam_betas.map(fmt),
        fmt(cfg.adam_betas),
        ck_path,
    )?;
    let name = |b: BatchOrder| format!("{b:?}").to_lowercase();
    fixed_on_resume(
        "--batches",
        spec.batches.map(name),
        name(cfg.batches),
        ck_path,
    )?;
    Ok(())
}

/// On resume, the settings that may change (learning rate, clipping, steps, schedule,
/// accumulation, checkpoint cadence): applied to `cfg`, each change described.
fn apply_changes(spec: &TrainSpec, cfg: &mut TrainConfig) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    if let Some(lr) = spec.lr.filter(|&lr| lr != cfg.lr) {
        changes.push(format!("lr {} -> {lr}", cfg.lr));
        cfg.lr = lr;
    }
    if let Some(g) = spec.grad_clip.map(clip_of).transpose()?
        && g != cfg.grad_clip
    {
        changes.push(format!("grad-clip {:?} -> {g:?}", cfg.grad_clip));
        cfg.grad_clip = g;
    }
    if let Some(st) = spec.steps.filter(|&st| st != cfg.steps) {
        changes.push(format!("steps {} -> {st}", cfg.steps));
        cfg.steps = st;
    }
    if let Some(sch) = spec.lr_schedule.filter(|&sch| sch != cfg.lr_schedule) {
        changes.push(format!("lr-schedule {:?} -> {sch:?}", cfg.lr_schedule));
        cfg.lr_schedule = sch;
    }
    if let Some(k) = spec
        .grad_accumulation
        .filter(|&k| k != cfg.grad_accumulation)
    {
        changes.push(format!(
            "grad-accumulation {} -> {k}",
            cfg.grad_accumulation
        ));
        cfg.grad_accumulation = k;
    }
    if let Some(k) = spec.checkpoint_every.filter(|&k| k != cfg.checkpoint_every) {
        changes.push(format!("checkpoint-every {} -> {k}", cfg.checkpoint_every));
        cfg.checkpoint_every = k;
    }
    Ok(changes)
}
