//! `scorelab train`: the run's settings from flags or, on `--resume`, from the
//! checkpoint; then the library's training loop.

use crate::args::*;
use crate::common::*;
pub(crate) use crate::run_record::{CliExtra, RunRecord, no_cond, scorelab_arch};
use anyhow::{Context, Result, bail};
use score_nn::mlp::MlpConfig;
use score_train::checkpoint::CheckpointFile;
use score_train::pipeline::{self, ModelSpec};
use score_train::train::RunConfig;
use score_train::train::{
    ImageData, StreamedImageData, TrainConfig, TrainOutput, VectorData, train,
};
use std::path::Path;
use std::time::Instant;

/// The augmentation the flags ask for (`None` for plain denoising).
pub(crate) fn augment_of(a: &TrainArgs) -> Result<Option<scoreaug::Augment>> {
    use scoreaug::Mode;
    let mode = Mode::parse(a.augment.as_deref().unwrap_or("none"))?;
    let extra = a.aug_p.is_some() || a.aug_transforms.is_some() || a.no_aug_cond;
    if mode == Mode::None {
        if extra || a.nla_set.is_some() {
            bail!("--aug-p, --aug-transforms, --no-aug-cond and --nla-set need --augment");
        }
        return Ok(None);
    }
    let kinds = match &a.aug_transforms {
        Some(t) => scoreaug::transforms::Kind::parse_list(t)?,
        None => scoreaug::transforms::Kind::ALL.to_vec(),
    };
    let aug = scoreaug::Augment::new(mode, a.aug_p.unwrap_or(0.5), kinds, !a.no_aug_cond)?;
    match (a.nla_set.as_deref(), mode) {
        (None | Some("edm"), _) => Ok(Some(aug)),
        (Some("blit"), Mode::Nla | Mode::NlaScoreAug) => Ok(Some(aug.with_blit_nla())),
        (Some("blit"), _) => bail!("--nla-set: needs --augment nla or nla+scoreaug"),
        (Some(other), _) => bail!("--nla-set: '{other}' is neither edm nor blit"),
    }
}

/// `--lr-schedule`: `constant` or `inverse-sqrt:REF_STEPS`.
pub(crate) fn parse_schedule(s: &str) -> Result<score_train::train::LrSchedule> {
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
pub(crate) fn parse_betas(s: &str) -> Result<[f64; 2]> {
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
pub(crate) fn parse_batches(s: &str) -> Result<score_train::train::BatchOrder> {
    use score_train::train::BatchOrder;
    Ok(match s {
        "epochs" => BatchOrder::Epochs,
        "replacement" => BatchOrder::Replacement,
        _ => bail!("--batches: '{s}' is neither epochs nor replacement"),
    })
}

/// The run record on `--resume`: the checkpoint's, with each data and network flag
/// either left out or restated as it was.
fn resumed_record(a: &TrainArgs, rec: RunRecord, ck_path: &Path) -> Result<RunRecord> {
    if let Some(d) = &a.data_dir
        && Some(std::path::absolute(d)?) != rec.data_dir
    {
        bail!(
            "--data-dir {}: {} was trained on {:?}, and --resume cannot change it",
            d.display(),
            ck_path.display(),
            rec.data_dir
        );
    }
    Ok(RunRecord {
        data: fixed_on_resume(
            "--data",
            a.data.as_deref().map(data_name),
            data_name(&rec.data),
            ck_path,
        )?,
        data_dir: rec.data_dir,
        fingerprint: rec.fingerprint,
        xflip: fixed_on_resume("--xflip", a.xflip.then_some(true), rec.xflip, ck_path)?,
        resolution: match (a.resolution, rec.resolution) {
            (Some(n), was) if Some(n) != was => bail!(
                "--resolution {n}: {} was trained at {was:?}, and --resume cannot change it",
                ck_path.display()
            ),
            (_, was) => was,
        },
        subset: fixed_on_resume("--subset", a.subset, rec.subset, ck_path)?,
        channels: fixed_on_resume("--channels", a.channels, rec.channels, ck_path)?,
        cond: fixed_on_resume("--cond", a.cond.clone(), rec.cond, ck_path)?,
        augment: rec.augment,
        arch: fixed_on_resume("--arch", a.arch.clone(), rec.arch, ck_path)?,
        blocks: fixed_on_resume("--blocks", a.blocks, rec.blocks, ck_path)?,
        layout_by_resolution: rec.layout_by_resolution,
    })
}

/// The run's settings: from the flags, or on `--resume` from the checkpoint with the
/// changes the flags may make (lr, clipping, steps, checkpoint interval).
pub(crate) fn train_settings(
    c: &Common,
    a: &TrainArgs,
    ck_path: &Path,
    resume: Option<&CheckpointFile>,
) -> Result<(TrainConfig, RunRecord)> {
    let Some(ck) = resume else {
        return fresh_settings(c, a);
    };
    let RunConfig {
        train: mut cfg,
        extra: CliExtra { cli: rec },
        ..
    } = ck
        .meta
        .config_as::<RunConfig<CliExtra>>(ck_path)
        .context("config.train and config.extra.cli are written by `scorelab train`; a checkpoint without them cannot be resumed from the CLI")?;
    fixed_on_resume("--seed", c.seed_arg, ck.meta.seed, ck_path)?;
    cfg.batch_size = fixed_on_resume("--batch-size", a.batch_size, cfg.batch_size, ck_path)?;
    fixed_on_resume(
        "--sigma-data",
        a.sigma_data,
        cfg.precond.sigma_data(),
        ck_path,
    )?;
    let rec = resumed_record(a, rec, ck_path)?;
    let asked = a.augment.is_some()
        || a.aug_p.is_some()
        || a.aug_transforms.is_some()
        || a.no_aug_cond
        || a.nla_set.is_some();
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
    check_fixed_optimiser(a, &cfg, ck_path)?;
    let changes = apply_changes(a, &mut cfg)?;
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

/// A new run's settings: the demo's training settings with the flags applied.
fn fresh_settings(c: &Common, a: &TrainArgs) -> Result<(TrainConfig, RunRecord)> {
    let mut cfg = pipeline::demo_train_config(a.steps.unwrap_or(2000), c.seed());
    cfg.batch_size = a.batch_size.unwrap_or(cfg.batch_size);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.grad_clip = a.grad_clip.map_or(Ok(cfg.grad_clip), clip_of)?;
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
        data: data_name(a.data.as_deref().unwrap_or("fashion-mnist-test")),
        data_dir: a.data_dir.as_deref().map(std::path::absolute).transpose()?,
        fingerprint: None,
        xflip: a.xflip,
        resolution: a.resolution,
        subset: a.subset.unwrap_or(0),
        channels: a.channels.unwrap_or(32),
        cond,
        augment: augment_of(a)?,
        arch: a.arch.clone().unwrap_or_else(scorelab_arch),
        blocks: a.blocks.unwrap_or(2),
        layout_by_resolution: true,
    };
    if !matches!(rec.arch.as_str(), "scorelab" | "ddpmpp" | "ncsnpp" | "adm") {
        bail!(
            "--arch: '{}' is not scorelab, ddpmpp, ncsnpp or adm",
            rec.arch
        );
    }
    if rec.blocks == 0 {
        bail!("--blocks: must be at least 1");
    }
    if rec.arch == "scorelab" && a.blocks.is_some() {
        bail!(
            "--blocks: sets an EDM network's blocks per level; give --arch ddpmpp, ncsnpp or adm"
        );
    }
    Ok((cfg, rec))
}

/// On resume, the optimiser settings that cannot change (label dropout, weight decay,
/// Adam's betas, the batch order) must be left out or restated as they were.
fn check_fixed_optimiser(a: &TrainArgs, cfg: &TrainConfig, ck_path: &Path) -> Result<()> {
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
    Ok(())
}

/// On resume, the settings that may change (learning rate, clipping, steps, schedule,
/// accumulation, checkpoint cadence): applied to `cfg`, each change described.
fn apply_changes(a: &TrainArgs, cfg: &mut TrainConfig) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    if let Some(lr) = a.lr.filter(|&lr| lr != cfg.lr) {
        changes.push(format!("lr {} -> {lr}", cfg.lr));
        cfg.lr = lr;
    }
    if let Some(g) = a.grad_clip.map(clip_of).transpose()?
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
    Ok(changes)
}

pub(crate) fn cmd_train(c: &Common, a: &TrainArgs) -> Result<()> {
    let dev = device(&c.device)?.autodiff();
    let mut run = open_run(&a.out, a.resume, a.overwrite)?;
    let (ck_path, resume) = (run.checkpoint.clone(), run.resume.take());
    let (mut cfg, mut rec) = train_settings(c, a, &ck_path, resume.as_ref())?;
    dev.seed(cfg.seed);
    let out = train_output(c, a, &ck_path);
    let data = open_train_data(&rec)?;
    check_fingerprint(&mut rec, &data, &ck_path)?;
    let with_record = |spec: ModelSpec| -> Result<serde_json::Value> {
        let mut extra = spec.to_json();
        extra["cli"] = serde_json::to_value(&rec)?;
        Ok(extra)
    };
    let t0 = Instant::now();
    let (step, loss) = match data {
        TrainData::Vectors(arr, d) => {
            check_vector_run(&rec)?;
            if resume.is_none() {
                cfg.precond = new_precond(a, &mut arr.data.iter().copied())?;
            }
            crate::run_file::write(&a.out, &cfg, &rec)?;
            let mlp = MlpConfig::new(d).with_seed(cfg.seed);
            let extra = with_record(ModelSpec::mlp(&mlp, &rec.data))?;
            let data = VectorData {
                data: arr.data,
                dim: d,
            };
            let r = train(mlp.init(&dev), &data, &cfg, extra, &out, resume.as_ref())?;
            (r.step, r.last_loss)
        }
        TrainData::Images(images) => {
            let images = prepare_images(images, &rec);
            if resume.is_none() {
                cfg.precond = new_precond(a, &mut images.pixels.iter().map(|&v| v as f64))?;
            }
            crate::run_file::write(&a.out, &cfg, &rec)?;
            let shape = DataShape::of(&images);
            let data = ImageData {
                images,
                use_labels: rec.cond == "class",
            };
            let run = (&out, resume.as_ref());
            train_images(&data, &shape, &rec, &cfg, with_record, run, &dev)?
        }
        TrainData::Streamed(folder) => {
            let data = StreamedImageData::new(folder, rec.subset, rec.xflip, rec.cond == "class");
            let shape = DataShape::of_streamed(&data, &rec);
            eprintln!("data: {} (read image by image)", shape.source);
            if resume.is_none() {
                cfg.precond = streamed_precond(a, &data)?;
            }
            crate::run_file::write(&a.out, &cfg, &rec)?;
            let run = (&out, resume.as_ref());
            train_images(&data, &shape, &rec, &cfg, with_record, run, &dev)?
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"checkpoint": ck_path, "step": step, "loss": loss, "seconds": secs}),
        || match loss.is_nan() {
            // A resume at or past --steps runs no step: there is no loss to report.
            true => outln!(
                "{} is already at step {step}: nothing to train (raise --steps to continue)",
                ck_path.display()
            ),
            false => outln!(
                "trained to step {step} (loss {loss:.4}) in {secs:.1} s; checkpoint {}",
                ck_path.display()
            ),
        },
    );
    Ok(())
}

/// A new run's EDM preconditioning: σ_data from --sigma-data or from the data.
pub(crate) fn new_precond(
    a: &TrainArgs,
    values: &mut dyn Iterator<Item = f64>,
) -> Result<score_core::Precond> {
    let sd = a
        .sigma_data
        .unwrap_or_else(|| score_core::precond::sigma_data_of(values));
    if !(sd > 0.0 && sd.is_finite()) {
        match a.sigma_data {
            Some(_) => bail!("--sigma-data: must be positive and finite, got {sd}"),
            None => bail!(
                "--data {}: the data's standard deviation is {sd}, not a σ_data (constant data? give --sigma-data)",
                a.data.as_deref().unwrap_or("fashion-mnist-test")
            ),
        }
    }
    Ok(score_core::Precond::edm(sd))
}

/// What `--data` holds: vectors `[n, d]` (the MLP) or images (the UNet), in memory or,
/// for a folder, read image by image.
enum TrainData {
    Vectors(score_io::npy::NpyArray, usize),
    Images(score_io::images::ImageDataset),
    Streamed(score_io::folder::StreamedFolder),
}

/// What the network and the checkpoint need to know of the training images.
struct DataShape {
    image_shape: [usize; 3],
    num_classes: usize,
    source: String,
}

impl DataShape {
    fn of(d: &score_io::images::ImageDataset) -> Self {
        Self {
            image_shape: d.image_shape,
            num_classes: d.num_classes,
            source: d.source.clone(),
        }
    }

    /// A streamed folder's shape, its source stating the subset and x-flip as
    /// [`prepare_images`] does.
    fn of_streamed(d: &StreamedImageData, rec: &RunRecord) -> Self {
        let mut source = d.folder.source.clone();
        if rec.subset > 0 {
            source = format!("{source} (balanced subset of {})", rec.subset);
        }
        if rec.xflip {
            source = format!("{source} (x-flipped copies added)");
        }
        Self {
            image_shape: d.folder.image_shape,
            num_classes: d.folder.num_classes,
            source,
        }
    }
}

/// A new run's preconditioning from a streamed folder: σ_data over its examples in
/// order, each decoded once more (the same values, in the same order, as in memory).
fn streamed_precond(a: &TrainArgs, data: &StreamedImageData) -> Result<score_core::Precond> {
    let mut failed = None;
    let values = (0..data.order.len()).flat_map(|k| match data.example(k) {
        Ok(px) => px,
        Err(e) => {
            failed.get_or_insert(e);
            Vec::new()
        }
    });
    let precond = new_precond(a, &mut values.map(|v| v as f64));
    match failed {
        Some(e) => Err(e.into()),
        None => precond,
    }
}

/// Open the run's data: a `.npy` of rank 2 is vectors, of rank 3 or 4 images; names
/// and folders are images.
fn open_train_data(rec: &RunRecord) -> Result<TrainData> {
    use score_io::images::ImageDataset;
    let path = Path::new(&rec.data);
    if rec.resolution == Some(0) {
        bail!("--resolution: must be at least 1");
    }
    let images = if path.is_dir() {
        // A folder is read image by image, at each batch (resized when asked).
        return Ok(TrainData::Streamed(score_io::folder::StreamedFolder::open(
            path,
            rec.resolution,
        )?));
    } else if !rec.data.ends_with(".npy") {
        load_images(&rec.data, rec.data_dir.as_deref())?
    } else {
        let arr = score_io::npy::read_npy_finite(path)?;
        if arr.shape.len() == 2 {
            if rec.resolution.is_some() {
                bail!("--resolution: {} holds vectors, not images", rec.data);
            }
            let (_, d) = arr.matrix(path)?;
            return Ok(TrainData::Vectors(arr, d));
        }
        ImageDataset::from_npy(arr, path)?
    };
    Ok(TrainData::Images(match rec.resolution {
        Some(n) => {
            score_core::limits::ensure_values_fit(
                "--resolution",
                images.num_images() as u128,
                (n as u128).saturating_mul(n as u128).saturating_mul(3 * 4),
                "use a smaller --resolution",
            )?;
            images.with_resolution(n)
        }
        None => images,
    }))
}

/// The run's images: its `--subset`, then `--xflip`; stated on stderr.
fn prepare_images(
    mut images: score_io::images::ImageDataset,
    rec: &RunRecord,
) -> score_io::images::ImageDataset {
    if rec.subset > 0 {
        images = images.balanced_subset(rec.subset);
        images.source = format!("{} (balanced subset of {})", images.source, rec.subset);
    }
    if rec.xflip {
        images = images.with_xflip();
    }
    eprintln!("data: {}", images.source);
    images
}

/// A digest of the data's values (and labels): FNV-1a over their bits, in order; a
/// folder's is the same read in memory or image by image.
fn fingerprint(data: &TrainData) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    match data {
        TrainData::Vectors(arr, _) => arr.data.iter().for_each(|v| eat(v.to_bits())),
        TrainData::Images(d) => {
            d.image_shape.iter().for_each(|&v| eat(v as u64));
            d.pixels.iter().for_each(|v| eat(v.to_bits() as u64));
            d.labels.iter().for_each(|&l| eat(l as u64));
        }
        TrainData::Streamed(f) => {
            f.image_shape.iter().for_each(|&v| eat(v as u64));
            for i in 0..f.len() {
                f.image(i)?.iter().for_each(|v| eat(v.to_bits() as u64));
            }
            f.labels.iter().for_each(|&l| eat(l as u64));
        }
    }
    Ok(format!("fnv1a64:{h:016x}"))
}

/// Record the data's fingerprint; on resume, refuse data that changed since the run
/// began (the same path can hold other images). Runs written before fingerprints were
/// recorded are not checked.
fn check_fingerprint(rec: &mut RunRecord, data: &TrainData, ck_path: &Path) -> Result<()> {
    let now = fingerprint(data)?;
    if let Some(was) = &rec.fingerprint
        && *was != now
    {
        bail!(
            "--data {}: the data differ from those {} was trained on (fingerprint {was}, now {now}); --resume needs the same data (start a new run in another --out)",
            rec.data,
            ck_path.display()
        );
    }
    rec.fingerprint = Some(now);
    Ok(())
}

/// `--data` as recorded: a path that exists is made absolute, so that `--resume` finds
/// it from any folder; a data set name stays as given.
pub(crate) fn data_name(given: &str) -> String {
    let p = Path::new(given);
    match p.exists() {
        true => std::path::absolute(p).map_or(given.into(), |a| a.display().to_string()),
        false => given.into(),
    }
}

/// Vectors (`.npy`) train the MLP: no labels to condition on, nothing to augment.
fn check_vector_run(rec: &RunRecord) -> Result<()> {
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
    Ok(())
}

/// The demo's UNet at the data's shape and the run's width, with a label input for
/// `--cond class` and an augmentation input for `--augment`.
fn unet_for(images: &DataShape, rec: &RunRecord) -> Result<score_nn::unet::UNetConfig> {
    let [c, h, _] = images.image_shape;
    let mut unet = match rec.layout_by_resolution {
        true => pipeline::unet_config_for(h, c, rec.channels),
        // Runs begun before the layout followed the resolution resume as they began.
        false => pipeline::demo_unet_config().with_model_channels(rec.channels),
    };
    unet.resolution = h;
    unet.in_channels = c;
    let use_labels = rec.cond == "class";
    if use_labels {
        if images.num_classes < 2 {
            bail!(
                "--cond class: {} has no class labels (a folder takes them from its sub-folders or a metadata.jsonl/metadata.csv with file_name and label)",
                images.source
            );
        }
        unet.label_dim = images.num_classes;
    }
    if let Some(aug) = &rec.augment {
        unet.augment_dim = aug.augment_dim();
    }
    unet.validate()
        .map_err(|e| anyhow::anyhow!("{} images: {e}", images.source))?;
    Ok(unet)
}

/// EDM's published configuration of `rec.arch` at the data's shape: --channels as
/// model_channels, --blocks per level, the label and augment inputs of the scorelab
/// UNet `unet` would have, attention at half the resolution (EDM's 16 of 32).
fn edm_for(
    unet: &score_nn::unet::UNetConfig,
    rec: &RunRecord,
) -> Result<score_nn::edm::EdmNetConfig> {
    use score_nn::edm::EdmNetConfig;
    let (res, c) = (unet.resolution, unet.in_channels);
    let base = match rec.arch.as_str() {
        "ddpmpp" => EdmNetConfig::ddpmpp(res, c),
        "ncsnpp" => EdmNetConfig::ncsnpp(res, c),
        _ => EdmNetConfig::adm(res, c),
    };
    let (mult, attn) = match rec.layout_by_resolution {
        true => pipeline::edm_layout_for(&rec.arch, res),
        false if rec.arch == "adm" => (vec![1, 2, 2], res / 2),
        false => (vec![2, 2, 2], res / 2),
    };
    let cfg = EdmNetConfig {
        model_channels: Some(rec.channels),
        channel_mult: Some(mult),
        num_blocks: Some(rec.blocks),
        attn_resolutions: Some(vec![attn]),
        label_dim: unet.label_dim,
        augment_dim: unet.augment_dim,
        dropout: Some(0.0),
        ..base
    };
    cfg.resolved()
        .map_err(|e| anyhow::anyhow!("--arch {}: {e}", rec.arch))
}

/// [`ensure_training_fits`] for an EDM network: its `num_blocks` residual blocks per
/// level against the scorelab UNet's one.
fn ensure_edm_fits(
    edm: &score_nn::edm::EdmNetConfig,
    micro_batch: usize,
    [c, h, w]: [usize; 3],
) -> Result<()> {
    let widest = edm.model_channels.unwrap_or(1)
        * edm
            .channel_mult
            .as_ref()
            .and_then(|m| m.iter().copied().max())
            .unwrap_or(1);
    let per_image =
        3 * unet_pass_bytes([c, h, w], widest) * edm.num_blocks.unwrap_or(1).max(1) as u128;
    score_core::limits::ensure_fits(
        "--batch-size/--channels/--blocks",
        (micro_batch.max(1) as u128).saturating_mul(per_image),
        "use a smaller --batch-size (with --grad-accumulation), --channels or --blocks",
    )?;
    Ok(())
}

/// Refuse a batch or width whose training step cannot fit in memory: three times
/// [`unet_pass_bytes`] per image (the backward pass keeps the forward maps and as many
/// gradients).
fn ensure_training_fits(
    unet: &score_nn::unet::UNetConfig,
    micro_batch: usize,
    [c, h, w]: [usize; 3],
) -> Result<()> {
    let widest = unet
        .model_channels
        .saturating_mul(unet.channel_mult.iter().copied().max().unwrap_or(1));
    let per_image = 3 * unet_pass_bytes([c, h, w], widest);
    let batch = micro_batch.max(1) as u128;
    score_core::limits::ensure_fits(
        "--batch-size/--channels",
        batch.saturating_mul(per_image),
        "use a smaller --batch-size (with --grad-accumulation for the same step) or --channels",
    )?;
    Ok(())
}

/// Where `train` writes: the checkpoint (and kept ones), `train.jsonl`, progress on a
/// terminal unless `--json`.
fn train_output(c: &Common, a: &TrainArgs, ck_path: &Path) -> TrainOutput {
    TrainOutput {
        keep_checkpoints: a.keep_checkpoints,
        checkpoint: Some(ck_path.to_path_buf()),
        log: Some(a.out.join("train.jsonl")),
        progress: !c.json,
        stop_after: None,
    }
}

/// `--grad-clip`: 0 is off, a positive value the bound; NaN, infinity and negative
/// values are refused (NaN used to mean off).
fn clip_of(g: f64) -> Result<Option<f64>> {
    match g {
        0.0 => Ok(None),
        g if g > 0.0 && g.is_finite() => Ok(Some(g)),
        g => bail!("--grad-clip {g}: must be 0 (off) or positive and finite"),
    }
}

/// Train an image network (scorelab's UNet, or EDM's with `--arch`) on `data`.
fn train_images(
    data: &dyn score_train::train::TrainData<4>,
    shape: &DataShape,
    rec: &RunRecord,
    cfg: &TrainConfig,
    with_record: impl Fn(ModelSpec) -> Result<serde_json::Value>,
    (out, resume): (&TrainOutput, Option<&score_train::CheckpointFile>),
    dev: &burn::tensor::Device,
) -> Result<(usize, f64)> {
    let unet = unet_for(shape, rec)?;
    let micro = cfg.batch_size / cfg.grad_accumulation.max(1);
    let objective: &dyn score_train::train::Objective<4> = match &rec.augment {
        Some(aug) => aug,
        None => &score_train::train::Denoising,
    };
    if rec.arch != "scorelab" {
        let edm = edm_for(&unet, rec)?;
        ensure_edm_fits(&edm, micro, shape.image_shape)?;
        let spec = ModelSpec::Edm {
            config: serde_json::to_value(&edm)?,
            image_shape: shape.image_shape,
            dataset: shape.source.clone(),
        };
        let extra = with_record(spec)?;
        let net = edm.init(dev).map_err(anyhow::Error::msg)?;
        let r = score_train::train::train_with(net, data, cfg, objective, extra, out, resume)?;
        Ok((r.step, r.last_loss))
    } else {
        ensure_training_fits(&unet, micro, shape.image_shape)?;
        let extra = with_record(ModelSpec::unet(&unet, shape.image_shape, &shape.source))?;
        let net = unet.init(dev);
        let r = score_train::train::train_with(net, data, cfg, objective, extra, out, resume)?;
        Ok((r.step, r.last_loss))
    }
}
