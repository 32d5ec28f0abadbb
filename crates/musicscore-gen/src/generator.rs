//! Training and sampling the text-to-score model of [`crate::textscore`] through
//! score-core: its training loop (checkpoints, EMA, exact resume, caption dropout as
//! condition dropout), its checkpoint format (the network description in
//! `config.extra`, as every scorelab UNet, plus a `text` record), and its samplers
//! with classifier-free guidance.

use std::path::Path;

use serde::{Deserialize, Serialize};

use score_core::burn::tensor::Device;
use score_core::precond::Precond;
use score_core::samplers::Sampler;
use score_core::sigmas::GridKind;
use score_nn::text::TextEncoder;
use score_nn::unet::UNet;
use score_train::checkpoint::{CheckpointFile, CheckpointMeta, checkpoint_bytes, save_checkpoint};
use score_train::pipeline::{ImageCondition, ModelSpec, generate_images, load_unet};
use score_train::train::TrainConfig;

use crate::autoencoder::{Autoencoder, LatentRecord};
use crate::latent::{decode_latents, load_autoencoder};
use crate::textscore::{FieldLabels, Geometry, PromptBank, unet_config_for};
use crate::vocabulary::Vocabulary;
use musicscore_data::error::{MusicScoreError, Result};
use musicscore_data::prompt::Template;
use score_nn::unet::UNetConfig;

/// The part of a text-to-score checkpoint's `config.extra` this crate reads.
#[derive(Debug, Clone, Deserialize)]
pub struct TextExtra {
    /// The text-to-score settings.
    pub text: TextRecord,
}

/// A text-to-score checkpoint's configuration: training settings and [`TextExtra`].
pub type TextConfig = score_train::train::RunConfig<TextExtra>;

/// The text-to-score settings stored beside the network in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextRecord {
    /// How pages became images.
    pub geometry: Geometry,
    /// The prompt template.
    pub template: String,
    /// The text encoder (all-MiniLM-L6-v2, standing in for OpenCLIP).
    pub encoder: String,
    /// The training corpus, for the record.
    pub corpus: String,
    /// Training images (staff systems).
    pub systems: usize,
    /// Distinct training prompts.
    pub prompts: usize,
    /// Caption dropout probability.
    pub caption_dropout: f64,
    /// A latent model's autoencoder (`None`: the model works on pixels).
    #[serde(default)]
    pub latent: Option<LatentRecord>,
    /// The values of each prompt field in the training prompts (absent in checkpoints
    /// written before it was recorded).
    #[serde(default)]
    pub vocabulary: Option<Vocabulary>,
    /// Trained with the squared error of the leading eighth of the columns weighted
    /// this much ([`crate::textscore::SignatureWeighted`]); absent: EDM's loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_weight: Option<f64>,
    /// A prompt field given to the network as a class label beside the text
    /// (`--label-field`); absent: the text alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<FieldLabels>,
}

impl TextRecord {
    /// The shape the network works on: `[1, h, w]` pixels, or the latents
    /// `[c, h/f, w/f]` of a latent model.
    pub fn shape(&self) -> [usize; 3] {
        let g = &self.geometry;
        match &self.latent {
            None => [1, g.height, g.width],
            Some(l) => {
                let f = l.config.factor();
                [l.config.latent_channels, g.height / f, g.width / f]
            }
        }
    }

    /// The network: [`unet_config_for`] the shape, with a class-label input when a
    /// field is labelled.
    pub fn unet_config(&self) -> UNetConfig {
        let labels = self.labels.as_ref().map_or(0, |l| l.values.len());
        unet_config_for(self.shape()).with_label_dim(labels)
    }

    /// The encoded `prompts`, with the labelled field's labels when there is one.
    pub fn prompt_bank<'a>(
        &self,
        encoder: &TextEncoder,
        prompts: impl IntoIterator<Item = &'a str>,
    ) -> Result<PromptBank> {
        let labels = match &self.labels {
            Some(l) => Some((Template::parse(&self.template)?, l.clone())),
            None => None,
        };
        Ok(PromptBank::build(encoder, prompts)?.with_labels(labels))
    }
}

/// The encoder's name in [`TextRecord::encoder`].
pub const ENCODER: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Optimisation settings: batch `batch`, Adam at 1e-3 after a warm-up of up to 200
/// steps, no gradient clipping (as EDM), EDM's EMA with a ramp-up, EDM preconditioning with the data's σ, caption
/// dropout `caption_dropout`, a checkpoint every 100 steps.
pub fn train_config(
    steps: usize,
    batch: usize,
    seed: u64,
    sigma_data: f64,
    caption_dropout: f64,
) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: batch,
        lr: 1e-3,
        warmup_steps: 200.min(steps / 4 + 1),
        grad_clip: None,
        ema_halflife_kimg: 500.0,
        ema_rampup_ratio: Some(0.05),
        precond: Precond::edm(sigma_data),
        checkpoint_every: 100,
        log_every: 10,
        seed,
        label_dropout: caption_dropout,
        ..TrainConfig::default()
    }
}

/// The checkpoint's `config.extra`: the network description every scorelab UNet
/// checkpoint has (so `scorelab sample` loads it too) and the [`TextRecord`].
pub fn checkpoint_extra(rec: &TextRecord) -> serde_json::Value {
    let shape = rec.shape();
    let mut v = ModelSpec::unet(&rec.unet_config(), shape, &rec.corpus).to_json();
    v["text"] = serde_json::to_value(rec).expect("record serialises");
    v
}

/// A trained text-to-score model.
pub struct TextModel {
    /// The network (EMA weights).
    pub net: UNet,
    /// Its preconditioning.
    pub precond: Precond,
    /// Its settings.
    pub record: TextRecord,
    /// The checkpoint's metadata (step, …).
    pub meta: CheckpointMeta,
    /// A latent model's autoencoder.
    pub autoencoder: Option<Autoencoder>,
}

/// The autoencoder a latent model's `record` names, read from beside the checkpoint
/// `path` and checked against the recorded SHA-256.
fn record_autoencoder(path: &Path, record: &LatentRecord, device: &Device) -> Result<Autoencoder> {
    let file = path.parent().unwrap_or(Path::new(".")).join(&record.file);
    let bytes = std::fs::read(&file).map_err(|e| {
        MusicScoreError::Invalid(format!(
            "{}: {e} (the latent model {} needs its autoencoder beside it, as `scorelab musicscore train --autoencoder` left it)",
            file.display(),
            path.display()
        ))
    })?;
    let digest = score_core::fs::sha256_hex(&bytes);
    if digest != record.sha256 {
        return Err(MusicScoreError::Invalid(format!(
            "{}: SHA-256 {digest} is not the {} that {} was trained with",
            file.display(),
            record.sha256,
            path.display()
        )));
    }
    let ae = load_autoencoder(&file, device)?;
    if ae.settings.autoencoder != record.config {
        return Err(MusicScoreError::Invalid(format!(
            "{}: its network differs from the one {} records",
            file.display(),
            path.display()
        )));
    }
    Ok(ae.net)
}

impl TextModel {
    /// Load a checkpoint written by `scorelab musicscore train`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (net, _, precond, meta) = load_unet(path, device)?;
        let record = meta
            .config_as::<TextConfig>(path)
            .map_err(|e| {
                MusicScoreError::Invalid(format!(
                    "{e} (not a text-to-score checkpoint; `scorelab musicscore train` writes them)"
                ))
            })?
            .extra
            .text;
        let autoencoder = match &record.latent {
            Some(l) => Some(record_autoencoder(path, l, device)?),
            None => None,
        };
        Ok(Self {
            net,
            precond,
            record,
            meta,
            autoencoder,
        })
    }

    /// `n` images for `prompt` (`None`: unconditional) with guidance `guidance`, EDM's
    /// Heun sampler on a Karras grid of `steps` levels (σ 80 → 0.002), noise from
    /// `seed`: `[n, 1, h, w]` values in [−1, 1], row-major (a latent model's latents
    /// divided by the recorded scale and decoded). `on_step(done, total)`.
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        &self,
        encoder: Option<&TextEncoder>,
        prompt: Option<&str>,
        n: usize,
        guidance: f64,
        steps: usize,
        seed: u64,
        device: &Device,
        on_step: impl FnMut(usize, usize),
    ) -> Result<Vec<f32>> {
        if n == 0 {
            return Err(MusicScoreError::Invalid(
                "--n: at least one image, got 0".into(),
            ));
        }
        let condition = match (prompt, encoder) {
            (None, _) => ImageCondition::none(),
            (Some(p), Some(enc)) => {
                let bank = self.record.prompt_bank(enc, [p])?;
                ImageCondition {
                    cond: Some(bank.conditioning(&vec![p; n], device)?),
                    guidance,
                }
            }
            (Some(_), None) => {
                return Err(MusicScoreError::Invalid(
                    "a prompt needs the text encoder".into(),
                ));
            }
        };
        let [c, h, w] = self.record.shape();
        let shape = [n, c, h, w];
        let mut rng = score_core::tensor::stream_rng(seed, 0x5445_5854, 0);
        let noise = score_core::tensor::randn(shape, &mut rng, device);
        let sigmas = GridKind::Karras.build(steps, 0.002, 80.0)?;
        let sampler = Sampler::Heun(Default::default());
        let out = generate_images(
            &self.net,
            self.precond,
            &sampler,
            &sigmas,
            noise,
            &condition,
            on_step,
        )?;
        match (&self.autoencoder, &self.record.latent) {
            (Some(ae), Some(l)) => {
                let z = score_core::tensor::to_vec_f32(out.x / l.scale)?;
                decode_latents(ae, &z, [c, h, w], device)
            }
            _ => Ok(score_core::tensor::to_vec_f32(out.x)?),
        }
    }
}

/// Ship a latent model: its EMA weights at `out`, and its autoencoder's trained weights
/// alone (no EMA, no optimiser state) beside it as `ae_name`, the model's record
/// naming that file and its SHA-256. Returns the autoencoder's path.
pub fn export_latent_model(
    checkpoint: &Path,
    out: &Path,
    ae_name: &str,
    device: &Device,
) -> Result<std::path::PathBuf> {
    let model = TextModel::load(checkpoint, device)?;
    let (Some(latent), Some(ae)) = (&model.record.latent, &model.autoencoder) else {
        return Err(MusicScoreError::Invalid(format!(
            "{}: not a latent text-to-score model (`scorelab musicscore train --autoencoder` writes them)",
            checkpoint.display()
        )));
    };
    let source = CheckpointFile::read(&checkpoint.with_file_name(&latent.file))?;
    let ae_bytes = checkpoint_bytes(Some(ae), None, None, &source.meta)?;
    let ae_path = out.with_file_name(ae_name);
    score_core::fs::write_atomic(&ae_path, &ae_bytes)?;
    let mut meta = model.meta.clone();
    let rec = &mut meta.config["extra"]["text"]["latent"];
    rec["file"] = ae_name.into();
    rec["sha256"] = score_core::fs::sha256_hex(&ae_bytes).into();
    save_checkpoint::<UNet>(out, None, Some(&model.net), None, &meta)?;
    Ok(ae_path)
}
