//! The training runs of text-to-score as library functions: [`train_text`] (the
//! text-conditioned model, in pixels or in an autoencoder's latent space) and
//! [`train_ae`] (that autoencoder). Each takes a typed specification, opens and locks
//! its run folder, applies the resume rule (a run's settings come from its checkpoint;
//! a setting given again must agree), checks that a step fits in memory before any page
//! is read, and trains through score-train's loop. `scorelab musicscore train | train-ae`
//! and `cargo xtask train-musicscore-*` call these.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use musicscore_data::corpus::Split;
use musicscore_data::prompt::Template;
use musicscore_data::{MusicScoreError, Result};
use score_core::burn::tensor::Device;
use score_nn::text::TextEncoder;
use score_train::checkpoint::CheckpointFile;
use score_train::run::{RunDir, RunMode, fixed_on_resume};
use score_train::train::{Denoising, Objective, TrainConfig, TrainOutput, train_with};
use serde::Serialize;

use crate::autoencoder::{AutoencoderConfig, LatentRecord};
use crate::generator::{
    ENCODER, TextConfig, TextExtra, TextRecord, checkpoint_extra, train_config,
};
use crate::latent::{
    AeConfig, AeData, AeSettings, TrainedAe, encode_means, latent_scale, load_autoencoder,
    train_autoencoder,
};
use crate::systems::{CorpusSpec, Feedback, load_systems};
use crate::textscore::{
    FieldLabels, Geometry, PromptBank, SignatureWeighted, SystemItem, TextScoreData,
    unet_config_for,
};
use crate::vocabulary::Vocabulary;

/// The whole-system geometry of the autoencoder: the full width of a page at half of
/// 100 dpi (827 px → 414) on a 416-px canvas, 128 rows (a four-staff quartet system is
/// about 122).
pub const SYSTEM_GEOMETRY: Geometry = Geometry {
    scale: 0.5,
    width: 416,
    height: 128,
};

/// The file name a latent model's autoencoder has beside its checkpoint.
pub const AUTOENCODER_FILE: &str = "autoencoder.safetensors";

fn invalid(message: String) -> MusicScoreError {
    MusicScoreError::Invalid(message)
}

/// A text-to-score training run. `None` settings take their defaults for a new run and
/// the checkpoint's on resume. Messages name each setting by its `scorelab musicscore
/// train` flag.
#[derive(Debug, Clone)]
pub struct TextRunSpec {
    /// The training pages (the published train split unless the filter names one).
    pub corpus: CorpusSpec,
    /// The run folder (checkpoint.safetensors, train.jsonl).
    pub out: PathBuf,
    /// New, resume or overwrite.
    pub mode: RunMode,
    /// Total optimisation steps (on resume, a larger number continues the run).
    pub steps: usize,
    /// Minibatch size [16].
    pub batch: Option<usize>,
    /// Caption dropout probability [0.1].
    pub caption_dropout: Option<f64>,
    /// Prompt template or preset [paper].
    pub template: Option<String>,
    /// Image geometry [32x128@0.5; a latent run: its autoencoder's].
    pub geometry: Option<Geometry>,
    /// Seed [0].
    pub seed: Option<u64>,
    /// Keep every checkpoint written.
    pub keep_checkpoints: bool,
    /// Train in the latent space of this autoencoder (a `train-ae` checkpoint).
    pub autoencoder: Option<PathBuf>,
    /// Weight of the squared error in the leading eighth of the columns (clefs and key
    /// signature) [1: EDM's loss; on resume, the checkpoint's].
    pub signature_weight: Option<f64>,
    /// A prompt field (e.g. `key`) also given to the network as a one-hot class label
    /// over its training values [none: the text alone; on resume, the checkpoint's].
    pub label_field: Option<String>,
}

impl TextRunSpec {
    /// A run with every setting at its default.
    pub fn new(corpus: CorpusSpec, out: impl Into<PathBuf>, steps: usize) -> Self {
        Self {
            corpus,
            out: out.into(),
            mode: RunMode::New,
            steps,
            batch: None,
            caption_dropout: None,
            template: None,
            geometry: None,
            seed: None,
            keep_checkpoints: false,
            autoencoder: None,
            signature_weight: None,
            label_field: None,
        }
    }
}

/// What a text-to-score run did.
#[derive(Debug, Clone, Serialize)]
pub struct TextRunReport {
    /// The checkpoint written.
    pub checkpoint: PathBuf,
    /// The step it holds.
    pub step: usize,
    /// The last loss (NaN when there was nothing left to train).
    pub loss: f64,
    /// Wall time of the training loop.
    pub seconds: f64,
    /// The run's record (data, geometry, template, vocabulary, latent space).
    pub record: TextRecord,
}

/// The settings of a text-to-score run: (geometry, template, dropout, batch, seed).
type TextSettings = (Geometry, String, f64, usize, u64);

/// Train (or resume) a text-to-score model as `spec` says, on `device` (the autodiff
/// flag is added here).
pub fn train_text(
    spec: &TextRunSpec,
    device: &Device,
    fb: &Arc<dyn Feedback>,
) -> Result<TextRunReport> {
    let dev = device.clone().autodiff();
    let mut run = RunDir::open(&spec.out, spec.mode)?;
    let resume = run.resume.take();
    let ck_path = run.checkpoint.clone();
    let (g, template, dropout, batch, seed) = text_settings(spec, resume.as_ref(), &ck_path)?;
    if !(0.0..=1.0).contains(&dropout) {
        return Err(invalid(format!(
            "--caption-dropout: {dropout} is not in [0, 1]"
        )));
    }
    // The pixel systems' step (for a latent run: the autoencoder's pass over them) must
    // fit before any page is read; the latent step is checked once its shape is known.
    ensure_text_training_fits([1, g.height, g.width], batch)?;
    let (items, bank, record) = text_data(
        spec,
        (&ck_path, resume.as_ref()),
        (g, template, dropout),
        device,
        fb,
    )?;
    ensure_text_training_fits(record.shape(), batch)?;
    if let Some(ck) = &resume {
        check_same_data(ck, &record, &ck_path)?;
    }
    let sd = text_sigma_data(resume.as_ref(), &items)?;
    let cfg = train_config(spec.steps, batch, seed, sd, dropout);
    fb.note(&format!("{} distinct prompts, σ_data {sd:.4}", bank.len()));
    dev.seed(cfg.seed);
    let out = TrainOutput {
        checkpoint: Some(ck_path.clone()),
        log: Some(run.log()),
        progress: fb.training_bar(),
        stop_after: None,
        keep_checkpoints: spec.keep_checkpoints,
        replicas: Vec::new(),
    };
    let data = TextScoreData {
        items,
        bank,
        shape: record.shape(),
    };
    let t0 = Instant::now();
    let net = record.unet_config().init(&dev);
    let weighted = record
        .signature_weight
        .map(SignatureWeighted::eighth)
        .transpose()?;
    let objective: &dyn Objective<4> = match &weighted {
        Some(w) => w,
        None => &Denoising,
    };
    let r = train_with(
        net,
        &data,
        &cfg,
        objective,
        checkpoint_extra(&record),
        &out,
        resume.as_ref(),
    )?;
    Ok(TextRunReport {
        checkpoint: ck_path,
        step: r.step,
        loss: r.last_loss,
        seconds: t0.elapsed().as_secs_f64(),
        record,
    })
}

/// Refuse a geometry or batch whose training step cannot fit, before any page is read:
/// per image three times the UNet's activations (`score_nn::unet::pass_bytes`) plus its
/// self-attention at an eighth of the height, whose score matrix grows with the square
/// of the pixels there (scores, softmax and their gradients, float32).
fn ensure_text_training_fits(shape: [usize; 3], batch: usize) -> Result<()> {
    let cfg = unet_config_for(shape);
    let widest = cfg.model_channels * cfg.channel_mult.iter().copied().max().unwrap_or(1);
    let linear = 3 * score_nn::unet::pass_bytes(shape, widest);
    let att_px = ((shape[1] / 8).max(1) * (shape[2] / 8).max(1)) as u128;
    let per_image = linear.saturating_add(att_px.saturating_mul(att_px).saturating_mul(12));
    score_core::limits::ensure_fits(
        "--geometry/--batch",
        (batch.max(1) as u128).saturating_mul(per_image),
        "use a smaller --geometry or --batch",
    )?;
    Ok(())
}

/// The training systems of a run (their scaled latents for a latent run), their prompts
/// encoded, and the run's record. `run` is the checkpoint path and the checkpoint
/// resumed; `settings` the geometry, the template and the caption dropout.
fn text_data(
    spec: &TextRunSpec,
    run: (&Path, Option<&CheckpointFile>),
    settings: (Geometry, String, f64),
    plain: &Device,
    fb: &Arc<dyn Feedback>,
) -> Result<(Vec<SystemItem>, PromptBank, TextRecord)> {
    let (ck_path, resume) = run;
    let (g, template, dropout) = settings;
    let ae = run_autoencoder(spec.autoencoder.as_deref(), resume, ck_path, plain)?;
    let g = match &ae {
        Some(ae) => latent_geometry(ae, spec.geometry, g)?,
        None => g,
    };
    let tpl = Template::parse(&template)?;
    let corpus = spec.corpus.with_default_split(Split::Train);
    let systems = load_systems(&corpus, &g, &tpl, fb)?;
    let mut items = systems.items;
    fb.note(&format!(
        "{} systems ({} too tall left out); {}",
        items.len(),
        systems.too_tall,
        systems.corpus
    ));
    let mut vocabulary = Vocabulary::default();
    for i in &items {
        vocabulary.add(&tpl, &i.prompt);
    }
    let labels = field_labels(spec, resume, ck_path, &tpl, &vocabulary)?;
    let encoder = TextEncoder::load(None, plain)?;
    let bank = PromptBank::build(&encoder, items.iter().map(|i| i.prompt.as_str()))?
        .with_labels(labels.clone().map(|l| (tpl.clone(), l)));
    let latent = match &ae {
        Some(ae) => Some(to_latents(ae, &mut items, &g, ck_path, plain)?),
        None => None,
    };
    let record = TextRecord {
        geometry: g,
        template,
        encoder: ENCODER.into(),
        corpus: systems.corpus,
        systems: items.len(),
        prompts: bank.len(),
        caption_dropout: dropout,
        latent,
        vocabulary: Some(vocabulary),
        signature_weight: signature_weight(spec, resume, ck_path)?,
        labels,
    };
    Ok((items, bank, record))
}

/// The labelled field of a run: the spec's over this data's values for a new run; on
/// resume the checkpoint's (a restated `--label-field` must name the same field).
fn field_labels(
    spec: &TextRunSpec,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
    tpl: &Template,
    vocabulary: &Vocabulary,
) -> Result<Option<FieldLabels>> {
    let Some(ck) = resume else {
        return (spec.label_field.as_deref())
            .map(|f| FieldLabels::of(f, tpl, vocabulary))
            .transpose();
    };
    let stored = ck.meta.config_as::<TextConfig>(ck_path)?.extra.text.labels;
    match (&spec.label_field, &stored) {
        (Some(f), s) if s.as_ref().map(|l| &l.field) != Some(f) => Err(invalid(format!(
            "--label-field {f}: {} was trained with {}; resume with the same",
            ck_path.display(),
            s.as_ref()
                .map_or("no label field".into(), |l| l.field.clone())
        ))),
        _ => Ok(stored),
    }
}

/// The signature weight of a run: the spec's for a new run; on resume the checkpoint's
/// (a restated one must agree).
fn signature_weight(
    spec: &TextRunSpec,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
) -> Result<Option<f64>> {
    let Some(ck) = resume else {
        return Ok(spec.signature_weight);
    };
    let stored = ck
        .meta
        .config_as::<TextConfig>(ck_path)?
        .extra
        .text
        .signature_weight;
    match spec.signature_weight {
        Some(w) if Some(w) != stored => Err(invalid(format!(
            "--signature-weight {w}: {} was trained with {}; resume with the same",
            ck_path.display(),
            stored.map_or("none".into(), |s| s.to_string())
        ))),
        _ => Ok(stored),
    }
}

/// σ_data of a text-to-score run: the checkpoint's on resume, else the systems' pixels'.
fn text_sigma_data(resume: Option<&CheckpointFile>, items: &[SystemItem]) -> Result<f64> {
    Ok(match resume {
        Some(ck) => ck
            .meta
            .config_as::<TextConfig>(&ck.path)?
            .train
            .precond
            .sigma_data(),
        None => score_core::precond::sigma_data_of(
            items
                .iter()
                .flat_map(|i| i.pixels.iter().map(|&v| v as f64)),
        ),
    })
}

/// The settings of a text-to-score run: from the spec (with defaults) for a new run,
/// from the checkpoint on resume (a setting restated must agree).
fn text_settings(
    spec: &TextRunSpec,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
) -> Result<TextSettings> {
    let Some(ck) = resume else {
        return Ok((
            spec.geometry.unwrap_or_default(),
            spec.template.clone().unwrap_or_else(|| "paper".into()),
            spec.caption_dropout.unwrap_or(0.1),
            spec.batch.unwrap_or(16),
            spec.seed.unwrap_or(0),
        ));
    };
    let TextConfig {
        train,
        extra: TextExtra { text: rec },
        ..
    } = ck.meta.config_as::<TextConfig>(ck_path)?;
    Ok((
        fixed_on_resume("--geometry", spec.geometry, rec.geometry, ck_path)?,
        fixed_on_resume("--template", spec.template.clone(), rec.template, ck_path)?,
        fixed_on_resume(
            "--caption-dropout",
            spec.caption_dropout,
            rec.caption_dropout,
            ck_path,
        )?,
        fixed_on_resume("--batch", spec.batch, train.batch_size, ck_path)?,
        fixed_on_resume("--seed", spec.seed, ck.meta.seed, ck_path)?,
    ))
}

/// A resumed run must see the same data: as many systems and distinct prompts.
fn check_same_data(ck: &CheckpointFile, record: &TextRecord, ck_path: &Path) -> Result<()> {
    let stored = ck.meta.config_as::<TextConfig>(ck_path)?.extra.text;
    if stored.latent != record.latent {
        return Err(invalid(format!(
            "--autoencoder: {} was trained in another latent space (or in pixels); resume with the autoencoder it records",
            ck_path.display()
        )));
    }
    if stored.systems != record.systems || stored.prompts != record.prompts {
        return Err(invalid(format!(
            "--root: {} was trained on {} systems with {} prompts, these pages give {} and {}: resume on the same data",
            ck_path.display(),
            stored.systems,
            stored.prompts,
            record.systems,
            record.prompts
        )));
    }
    Ok(())
}

/// The autoencoder of a latent run and its file's bytes: the one the spec names for a
/// new run; on resume the one beside the checkpoint (a restated `--autoencoder` must be
/// the same file content).
pub struct RunAutoencoder {
    ae: TrainedAe,
    bytes: Vec<u8>,
}

fn run_autoencoder(
    given: Option<&Path>,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
    dev: &Device,
) -> Result<Option<RunAutoencoder>> {
    let stored = match resume {
        Some(ck) => ck.meta.config_as::<TextConfig>(ck_path)?.extra.text.latent,
        None => None,
    };
    let path = match (&stored, given) {
        (Some(l), _) => ck_path.with_file_name(&l.file),
        (None, Some(p)) if resume.is_none() => p.to_path_buf(),
        (None, Some(_)) => {
            return Err(invalid(format!(
                "--autoencoder: {} is a pixel-space run, and --resume cannot change it (start a new run in another --out)",
                ck_path.display()
            )));
        }
        (None, None) => return Ok(None),
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| MusicScoreError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let bytes = read(&path)?;
    if let (Some(l), Some(p)) = (&stored, given)
        && score_core::fs::sha256_hex(&read(p)?) != l.sha256
    {
        return Err(invalid(format!(
            "--autoencoder {}: {} was trained with another autoencoder (SHA-256 {}), and --resume cannot change it",
            p.display(),
            ck_path.display(),
            l.sha256
        )));
    }
    let ae = load_autoencoder(&path, dev)?;
    Ok(Some(RunAutoencoder { ae, bytes }))
}

/// A latent run's geometry: the autoencoder's image size, at the given geometry's scale
/// (default: `current`'s); a geometry of another size is refused.
fn latent_geometry(
    r: &RunAutoencoder,
    given: Option<Geometry>,
    current: Geometry,
) -> Result<Geometry> {
    let [h, w] = r.ae.settings.image;
    if let Some(g) = given
        && (g.height, g.width) != (h, w)
    {
        return Err(invalid(format!(
            "--geometry {g}: the autoencoder was trained on {w}x{h} systems; a latent model has its autoencoder's geometry"
        )));
    }
    Ok(Geometry {
        scale: given.map_or(current.scale, |g| g.scale),
        height: h,
        width: w,
    })
}

/// Replace the systems' pixels by their scaled latents (posterior means times one
/// over their standard deviation), write the autoencoder beside the checkpoint, and
/// describe it for the model's record.
fn to_latents(
    r: &RunAutoencoder,
    items: &mut [SystemItem],
    g: &Geometry,
    ck_path: &Path,
    dev: &Device,
) -> Result<LatentRecord> {
    let images: Vec<Vec<f32>> = items.iter().map(|i| i.pixels.clone()).collect();
    let z = encode_means(&r.ae.net, &images, [g.height, g.width], dev)?;
    let scale = latent_scale(&z);
    for (item, z) in items.iter_mut().zip(z) {
        item.pixels = z.into_iter().map(|v| (v as f64 * scale) as f32).collect();
    }
    let beside = ck_path.with_file_name(AUTOENCODER_FILE);
    let same = std::fs::read(&beside).is_ok_and(|b| b == r.bytes);
    if !same {
        score_core::fs::write_atomic(&beside, &r.bytes)?;
    }
    Ok(LatentRecord {
        file: AUTOENCODER_FILE.into(),
        sha256: score_core::fs::sha256_hex(&r.bytes),
        config: r.ae.settings.autoencoder.clone(),
        scale,
    })
}

/// An autoencoder training run. `None` settings take their defaults for a new run and
/// the checkpoint's on resume; messages name each by its `musicscore train-ae` flag.
#[derive(Debug, Clone)]
pub struct AeRunSpec {
    /// The training pages (the published train split unless the filter names one).
    pub corpus: CorpusSpec,
    /// The run folder.
    pub out: PathBuf,
    /// New, resume or overwrite.
    pub mode: RunMode,
    /// Total optimisation steps.
    pub steps: usize,
    /// Minibatch size [8].
    pub batch: Option<usize>,
    /// Training window width, a multiple of 4 [128].
    pub crop: Option<usize>,
    /// System geometry [416x128@0.5, [`SYSTEM_GEOMETRY`]].
    pub geometry: Option<Geometry>,
    /// Weight of the KL term [1e-6, Stable Diffusion's].
    pub kl_weight: Option<f64>,
    /// Latent channels [4].
    pub latent_channels: Option<usize>,
    /// Seed [0].
    pub seed: Option<u64>,
}

impl AeRunSpec {
    /// A run with every setting at its default.
    pub fn new(corpus: CorpusSpec, out: impl Into<PathBuf>, steps: usize) -> Self {
        Self {
            corpus,
            out: out.into(),
            mode: RunMode::New,
            steps,
            batch: None,
            crop: None,
            geometry: None,
            kl_weight: None,
            latent_channels: None,
            seed: None,
        }
    }
}

/// What an autoencoder run did.
#[derive(Debug, Clone, Serialize)]
pub struct AeRunReport {
    /// The checkpoint written.
    pub checkpoint: PathBuf,
    /// The step it holds.
    pub step: usize,
    /// The last batch's L1 loss (summed over a window's pixels).
    pub l1: f64,
    /// The same per pixel.
    pub l1_per_pixel: f64,
    /// Wall time of the training loop.
    pub seconds: f64,
}

/// Adam at 1e-3 after 100 warm-up steps, no clipping, a checkpoint every 100 steps.
fn ae_train_config(steps: usize, batch: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: batch,
        lr: 1e-3,
        warmup_steps: 100.min(steps / 4 + 1),
        grad_clip: None,
        checkpoint_every: 100,
        log_every: 10,
        seed,
        ..TrainConfig::default()
    }
}

/// The settings of an autoencoder run: the spec's (with defaults) for a new one, the
/// checkpoint's on resume (a restated setting must agree).
fn ae_settings(
    spec: &AeRunSpec,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
) -> Result<(Geometry, AeSettings, usize, u64)> {
    let geometry = spec.geometry.unwrap_or(SYSTEM_GEOMETRY);
    let fresh = AeSettings {
        autoencoder: AutoencoderConfig::new()
            .with_latent_channels(spec.latent_channels.unwrap_or(4)),
        crop: spec.crop.unwrap_or(128),
        kl_weight: spec.kl_weight.unwrap_or(1e-6),
        image: [geometry.height, geometry.width],
        corpus: String::new(),
        systems: 0,
    };
    let Some(ck) = resume else {
        return Ok((
            geometry,
            fresh,
            spec.batch.unwrap_or(8),
            spec.seed.unwrap_or(0),
        ));
    };
    let old = load_autoencoder(ck_path, &Device::flex())?.settings;
    let g = Geometry {
        scale: geometry.scale,
        height: old.image[0],
        width: old.image[1],
    };
    let g = fixed_on_resume("--geometry", spec.geometry, g, ck_path)?;
    let channels = fixed_on_resume(
        "--latent-channels",
        spec.latent_channels,
        old.autoencoder.latent_channels,
        ck_path,
    )?;
    let s = AeSettings {
        crop: fixed_on_resume("--crop", spec.crop, old.crop, ck_path)?,
        kl_weight: fixed_on_resume("--kl-weight", spec.kl_weight, old.kl_weight, ck_path)?,
        autoencoder: AutoencoderConfig::new().with_latent_channels(channels),
        ..old
    };
    let stored = ck.meta.config_as::<AeConfig>(ck_path)?.train.batch_size;
    let batch = fixed_on_resume("--batch", spec.batch, stored, ck_path)?;
    let seed = fixed_on_resume("--seed", spec.seed, ck.meta.seed, ck_path)?;
    Ok((g, s, batch, seed))
}

/// Refuse, before any page is read, a geometry or batch whose training step cannot
/// fit: one system image, and per window of the batch three times the UNet estimate
/// (`score_nn::unet::pass_bytes`) at the window's size and the encoder's top width.
fn ensure_ae_training_fits(g: &Geometry, s: &AeSettings, batch: usize) -> Result<()> {
    let top = s.autoencoder.widths.last().copied().unwrap_or(1);
    let window = 3 * score_nn::unet::pass_bytes([1, g.height, s.crop], top);
    let system = (g.height as u128) * (g.width as u128) * 4;
    score_core::limits::ensure_fits(
        "--geometry/--crop/--batch",
        system.saturating_add((batch.max(1) as u128).saturating_mul(window)),
        "use a smaller --geometry, --crop or --batch",
    )?;
    Ok(())
}

/// Train (or resume) the autoencoder of the latent model as `spec` says, on `device`
/// (the autodiff flag is added here).
pub fn train_ae(spec: &AeRunSpec, device: &Device, fb: &Arc<dyn Feedback>) -> Result<AeRunReport> {
    let dev = device.clone().autodiff();
    let mut run = RunDir::open(&spec.out, spec.mode)?;
    let resume = run.resume.take();
    let ck_path = run.checkpoint.clone();
    let (g, mut settings, batch, seed) = ae_settings(spec, resume.as_ref(), &ck_path)?;
    settings.check([g.height, g.width])?;
    ensure_ae_training_fits(&g, &settings, batch)?;
    let corpus = spec.corpus.with_default_split(Split::Train);
    let systems = load_systems(&corpus, &g, &Template::default(), fb)?;
    if resume.is_some() && settings.systems != systems.items.len() {
        return Err(invalid(format!(
            "--root: {} was trained on {} systems, these pages give {}: resume on the same data",
            ck_path.display(),
            settings.systems,
            systems.items.len()
        )));
    }
    settings.corpus = systems.corpus;
    settings.systems = systems.items.len();
    fb.note(&format!(
        "{} systems ({} too tall left out) at {g}; {}",
        settings.systems, systems.too_tall, settings.corpus
    ));
    let images: Vec<Vec<f32>> = systems.items.into_iter().map(|i| i.pixels).collect();
    let data = AeData {
        images: &images,
        image: [g.height, g.width],
    };
    let cfg = ae_train_config(spec.steps, batch, seed);
    dev.seed(seed);
    let out = TrainOutput {
        checkpoint: Some(ck_path.clone()),
        log: Some(run.log()),
        progress: fb.training_bar(),
        stop_after: None,
        keep_checkpoints: false,
        replicas: Vec::new(),
    };
    let t0 = Instant::now();
    let (ae, l1) = train_autoencoder(&data, &settings, &cfg, &out, resume.as_ref(), &dev)?;
    Ok(AeRunReport {
        checkpoint: ck_path,
        step: ae.step,
        l1,
        l1_per_pixel: l1 / (g.height * settings.crop) as f64,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
