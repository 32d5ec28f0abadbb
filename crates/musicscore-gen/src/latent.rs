//! Training the [`Autoencoder`] through score-train's one loop ([`score_train::fit`]),
//! loading it, and moving system images in and out of its latent space.
//!
//! Training draws, at step `k`, the batch's systems and, per system, a `crop`-wide
//! window at a random column (a multiple of the factor f), from the generator of
//! (seed, `k`) ([`TrainConfig::batch_indices`]), then the posterior noise: a resumed
//! run draws what an uninterrupted one would have. The checkpoint holds the network,
//! its EMA and Adam's state like every scorelab checkpoint; its configuration records
//! the [`AutoencoderConfig`] under `autoencoder`. Decoding uses the trained network
//! (`model.`), not the EMA: the EMA only serves the diffusion models.

use std::path::Path;

use rand::RngExt;
use score_core::burn::module::Module;
use serde::{Deserialize, Serialize};

use score_core::burn::tensor::{Device, Tensor};
use score_core::tensor::{from_f32, randn, to_vec_f32};
use score_train::checkpoint::{CheckpointFile, CheckpointMeta};
use score_train::fit::{Clock, JsonLinesLog, Observer, ProgressBar, Schedule, TrainStep, fit};
use score_train::train::{Learner, TrainConfig, TrainOutput, kept_checkpoint_path};

use crate::autoencoder::{Autoencoder, AutoencoderConfig};
use musicscore_data::error::{MusicScoreError, Result};

/// How the autoencoder is trained, recorded in its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AeSettings {
    /// The network.
    pub autoencoder: AutoencoderConfig,
    /// Width of the training windows (a multiple of the factor; the image height is
    /// kept whole).
    pub crop: usize,
    /// Weight of the KL term (SD: 1e-6).
    pub kl_weight: f64,
    /// Image height and width of the systems it was trained on.
    pub image: [usize; 2],
    /// The training corpus, for the record.
    pub corpus: String,
    /// Training systems.
    pub systems: usize,
}

impl AeSettings {
    /// Refuse settings the network cannot train with on `[h, w]` images: the crop a
    /// positive multiple of the down-sampling factor at most `w`, `h` a multiple of it,
    /// between 1 and the top width latent channels, a finite KL weight ≥ 0.
    pub fn check(&self, [h, w]: [usize; 2]) -> Result<()> {
        let f = self.autoencoder.factor();
        let top = self.autoencoder.widths.last().copied().unwrap_or(0);
        let c = self.autoencoder.latent_channels;
        let bad = if self.crop == 0 || self.crop > w || !self.crop.is_multiple_of(f) {
            format!(
                "crop {} must be a positive multiple of {f} at most the width {w}",
                self.crop
            )
        } else if !h.is_multiple_of(f) {
            format!("the height {h} must be a multiple of {f}")
        } else if c == 0 || c > top {
            format!("{c} latent channels: between 1 and the encoder's top width {top}")
        } else if !(self.kl_weight.is_finite() && self.kl_weight >= 0.0) {
            format!("KL weight {} must be finite and at least 0", self.kl_weight)
        } else {
            return Ok(());
        };
        Err(MusicScoreError::Invalid(format!("autoencoder: {bad}")))
    }
}

/// An autoencoder checkpoint's configuration: the loop's settings and [`AeExtra`].
pub type AeConfig = score_train::train::RunConfig<AeExtra>;

/// What an autoencoder checkpoint records beside the loop's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AeExtra {
    /// The network and how it was trained.
    pub autoencoder_training: AeSettings,
}

/// A trained autoencoder and its settings.
pub struct TrainedAe {
    /// The network (trained weights).
    pub net: Autoencoder,
    /// Its training settings.
    pub settings: AeSettings,
    /// Steps trained.
    pub step: usize,
}

/// Load an autoencoder checkpoint written by [`train_autoencoder`].
pub fn load_autoencoder(path: &Path, device: &Device) -> Result<TrainedAe> {
    let ck = CheckpointFile::read(path)?;
    let settings = ae_settings(&ck)?;
    let net = ck.load_into(settings.autoencoder.init(device), "model.", false)?;
    Ok(TrainedAe {
        net,
        settings,
        step: ck.meta.step,
    })
}

fn ae_settings(ck: &CheckpointFile) -> Result<AeSettings> {
    ck.meta
        .config_as::<AeConfig>(&ck.path)
        .map(|c| c.extra.autoencoder_training)
        .map_err(|e| {
            MusicScoreError::Invalid(format!(
                "{e} (not an autoencoder checkpoint; `scorelab musicscore train-ae` writes them)"
            ))
        })
}

/// Images (each `[1, h, w]` in [−1, 1]) as the training loop sees them.
pub struct AeData<'a> {
    /// The images.
    pub images: &'a [Vec<f32>],
    /// Their height and width.
    pub image: [usize; 2],
}

/// Train (or, with `resume`, continue) the autoencoder on `data` with the
/// optimisation settings of `cfg` (its `precond` is unused). Returns the network and
/// the last logged loss.
pub fn train_autoencoder(
    data: &AeData,
    settings: &AeSettings,
    cfg: &TrainConfig,
    out: &TrainOutput,
    resume: Option<&CheckpointFile>,
    device: &Device,
) -> Result<(TrainedAe, f64)> {
    cfg.validate()?;
    settings.check(data.image)?;
    if data.images.is_empty() {
        return Err(MusicScoreError::Invalid(
            "autoencoder: no training images".into(),
        ));
    }
    let net = settings.autoencoder.init(device);
    let (learner, start) = match resume {
        Some(ck) => {
            let old = ae_settings(ck)?;
            if old.autoencoder != settings.autoencoder || old.crop != settings.crop {
                return Err(MusicScoreError::Invalid(format!(
                    "{}: the run was trained with {:?}, crop {}; cannot resume it with {:?}, crop {}",
                    ck.path.display(),
                    old.autoencoder,
                    old.crop,
                    settings.autoencoder,
                    settings.crop
                )));
            }
            (Learner::restore(net, cfg, ck)?, ck.meta.step)
        }
        None => (Learner::new(net, cfg), 0),
    };
    let mut run = AeRun {
        learner,
        data,
        settings,
        cfg,
        device: device.clone(),
        out,
        window: (0.0, 0.0, 0),
        last: f64::NAN,
        rate: f64::NAN,
    };
    let end = out
        .stop_after
        .map_or(cfg.steps, |k| (start + k).min(cfg.steps));
    if start < cfg.steps {
        let schedule = Schedule {
            start,
            end,
            total: cfg.steps,
            log_every: cfg.log_every,
            checkpoint_every: cfg.checkpoint_every,
            saved: resume.map(|ck| ck.meta.step),
        };
        fit_observed(&mut run, &schedule, out)?;
    }
    let step = start.max(end);
    Ok((
        TrainedAe {
            net: run.learner.net.valid(),
            settings: settings.clone(),
            step,
        },
        run.last,
    ))
}

/// [`fit`] with the observers `out` asks for: the JSON-lines log, a progress bar.
fn fit_observed(run: &mut AeRun, schedule: &Schedule, out: &TrainOutput) -> Result<()> {
    let mut log = out.log.as_deref().map(JsonLinesLog::new);
    let mut bar = out.progress.then(|| ProgressBar::new("autoencoder"));
    let mut observers: Vec<&mut dyn Observer> = Vec::new();
    observers.extend(log.as_mut().map(|o| o as &mut dyn Observer));
    observers.extend(bar.as_mut().map(|o| o as &mut dyn Observer));
    fit(run, schedule, &mut observers)?;
    Ok(())
}

/// One autoencoder step as a [`TrainStep`].
struct AeRun<'a> {
    learner: Learner<Autoencoder>,
    data: &'a AeData<'a>,
    settings: &'a AeSettings,
    cfg: &'a TrainConfig,
    device: Device,
    out: &'a TrainOutput,
    /// (L1, KL, steps) since the last log point.
    window: (f64, f64, usize),
    last: f64,
    rate: f64,
}

impl AeRun<'_> {
    /// The batch of step `step`: windows of the drawn systems, and the posterior noise.
    fn batch(&self, step: usize) -> (Tensor<4>, Tensor<4>) {
        let [h, w] = self.data.image;
        let (crop, f) = (self.settings.crop, self.settings.autoencoder.factor());
        let (idx, mut rng) = self.cfg.batch_indices(step, self.data.images.len());
        let mut px = Vec::with_capacity(idx.len() * h * crop);
        for &i in &idx {
            let x0 = f * rng.random_range(0..=(w - crop) / f);
            let img = &self.data.images[i];
            for y in 0..h {
                px.extend_from_slice(&img[y * w + x0..y * w + x0 + crop]);
            }
        }
        let c = self.settings.autoencoder.latent_channels;
        let eps = randn([idx.len(), c, h / f, crop / f], &mut rng, &self.device);
        (from_f32(px, [idx.len(), 1, h, crop], &self.device), eps)
    }
}

impl TrainStep for AeRun<'_> {
    fn step(&mut self, step: usize) -> score_core::Result<()> {
        let (x, eps) = self.batch(step);
        let loss = self.learner.net.loss(x, eps, self.settings.kl_weight);
        let l1 = loss.l1.clone().into_scalar::<f32>() as f64;
        let kl = loss.kl.clone().into_scalar::<f32>() as f64;
        if !(l1.is_finite() && kl.is_finite()) {
            return Err(score_core::ScoreError::NonFiniteLoss {
                step,
                loss: l1 + self.settings.kl_weight * kl,
                checkpoint_step: None,
            });
        }
        let grads = loss.total.backward();
        let grads = score_core::burn::optim::GradientsParams::from_grads(grads, &self.learner.net);
        self.learner.step(self.cfg, step, grads)?;
        self.window.0 += l1;
        self.window.1 += kl;
        self.window.2 += 1;
        Ok(())
    }

    fn log_record(&mut self, done: usize, clock: &Clock) -> score_core::Result<serde_json::Value> {
        let (l1, kl, n) = std::mem::take(&mut self.window);
        let n = n.max(1) as f64;
        let pixels = (self.data.image[0] * self.settings.crop) as f64;
        self.last = l1 / n;
        self.rate = clock.rate(done);
        Ok(serde_json::json!({
            "step": done, "l1": l1 / n, "l1_per_pixel": l1 / n / pixels, "kl": kl / n,
            "lr": self.cfg.lr_at(done.saturating_sub(1)), "steps_per_s": self.rate,
            "elapsed_s": clock.elapsed_s(),
        }))
    }

    fn status(&self) -> String {
        if self.rate.is_nan() {
            return String::new();
        }
        let pixels = (self.data.image[0] * self.settings.crop) as f64;
        format!(
            "L1/pixel {:.4}  {:.2} steps/s",
            self.last / pixels,
            self.rate
        )
    }

    fn save(&mut self, done: usize) -> score_core::Result<bool> {
        let Some(path) = &self.out.checkpoint else {
            return Ok(false);
        };
        let config = serde_json::json!({
            "train": self.cfg,
            "extra": { "autoencoder_training": self.settings },
        });
        let meta = CheckpointMeta {
            stats: [("l1".to_string(), self.last)].into(),
            ..CheckpointMeta::new(done, self.cfg.seed, config)
        };
        let bytes = self.learner.checkpoint_bytes(&meta)?;
        score_core::fs::write_atomic(path, &bytes)?;
        if self.out.keep_checkpoints {
            score_core::fs::write_atomic(&kept_checkpoint_path(path, done), &bytes)?;
        }
        Ok(true)
    }
}

/// The posterior means of `images` (each `[1, h, w]`), 16 at a time: each
/// `[c, h/f, w/f]`, row-major.
pub fn encode_means(
    ae: &Autoencoder,
    images: &[Vec<f32>],
    image: [usize; 2],
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let [h, w] = image;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(16) {
        let px: Vec<f32> = chunk.iter().flatten().copied().collect();
        let (mean, _) = ae.encode(from_f32(px, [chunk.len(), 1, h, w], device));
        let per = mean.dims()[1..].iter().product::<usize>();
        let v = to_vec_f32(mean)?;
        out.extend(v.chunks(per).map(<[f32]>::to_vec));
    }
    Ok(out)
}

/// Images `[n, 1, h, w]` (row-major, clamped to [−1, 1]) decoded from latents `z`
/// `[n, c, h/f, w/f]`, 16 at a time.
pub fn decode_latents(
    ae: &Autoencoder,
    z: &[f32],
    latent: [usize; 3],
    device: &Device,
) -> Result<Vec<f32>> {
    let per: usize = latent.iter().product();
    let mut out = Vec::new();
    for chunk in z.chunks(16 * per.max(1)) {
        let n = chunk.len() / per;
        let x = ae.decode(from_f32(
            chunk.to_vec(),
            [n, latent[0], latent[1], latent[2]],
            device,
        ));
        out.extend(to_vec_f32(x.clamp(-1.0, 1.0))?);
    }
    Ok(out)
}

/// One over the standard deviation of all elements of `latents` (SD's scale factor):
/// the multiplier that gives the diffusion model unit-variance latents.
pub fn latent_scale(latents: &[Vec<f32>]) -> f64 {
    let n: usize = latents.iter().map(Vec::len).sum();
    let mean = latents.iter().flatten().map(|&v| v as f64).sum::<f64>() / n.max(1) as f64;
    let var = latents
        .iter()
        .flatten()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n.max(1) as f64;
    1.0 / var.sqrt().max(1e-12)
}

/// Peak signal-to-noise ratio of `b` against `a` (values in [−1, 1], peak-to-peak 2),
/// in dB.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    10.0 * (4.0 / mse.max(1e-20)).log10()
}
