//! Training: EDM's denoising score matching (Eq. 8) with Adam, learning-rate warm-up,
//! gradient clipping, an EMA of the weights, atomic checkpoints and exact resume.
//!
//! Every random draw of step s (minibatch indices, σ, noise, dropout) comes from
//! generators seeded by (seed, s) alone, and the checkpoint stores the model, the EMA,
//! Adam's moments and step counters, and the parameter ids. A run stopped after any
//! checkpoint and resumed therefore continues exactly as if it had never stopped
//! (tested in `tests/train.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Bytes, Device, Tensor};
use rand::RngExt;

use crate::checkpoint::{CheckpointFile, CheckpointMeta, FORMAT_VERSION, save_checkpoint};
use crate::data::images::ImageDataset;
use crate::denoiser::Conditioning;
use crate::error::{Result, ScoreError};
use crate::nn::precond::{ScoreNetwork, denoising_loss};
use crate::precond::Precond;
use crate::tensor::{from_f64, randn, stream_rng, tensor1};

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Total optimisation steps.
    pub steps: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Peak Adam learning rate.
    pub lr: f64,
    /// Linear warm-up length in steps (EDM: 10 M images ≈ 20 k steps at batch 512).
    pub warmup_steps: usize,
    /// Clip the global gradient norm to this value (None: no clipping).
    pub grad_clip: Option<f64>,
    /// EMA half-life in steps: β = 0.5^(1/half-life).
    pub ema_halflife_steps: f64,
    /// The preconditioning and its training σ distribution.
    pub precond: Precond,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Log every this many steps.
    pub log_every: usize,
    /// Run seed.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            lr: 1e-3,
            warmup_steps: 100,
            grad_clip: Some(1.0),
            ema_halflife_steps: 100.0,
            precond: Precond::default(),
            checkpoint_every: 250,
            log_every: 50,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Check the settings.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.batch_size == 0 {
            return Err(ScoreError::invalid("steps/batch_size", "must be positive"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(ScoreError::invalid(
                "lr",
                format!("must be positive and finite, got {}", self.lr),
            ));
        }
        if !(self.ema_halflife_steps > 0.0) {
            return Err(ScoreError::invalid(
                "ema_halflife_steps",
                "must be positive",
            ));
        }
        if self.grad_clip.is_some_and(|c| !(c > 0.0)) {
            return Err(ScoreError::invalid("grad_clip", "must be positive"));
        }
        Ok(())
    }

    /// The learning rate at `step` (linear warm-up, then constant).
    pub fn lr_at(&self, step: usize) -> f64 {
        self.lr * ((step + 1) as f64 / self.warmup_steps.max(1) as f64).min(1.0)
    }
}

/// A source of training minibatches of rank-`D` tensors.
pub trait TrainData<const D: usize> {
    /// Number of training examples.
    fn len(&self) -> usize;
    /// Whether the data set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The examples at `idx` and their conditioning.
    fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<D>, Option<Conditioning>);
}

/// Row-major vectors `[n, d]` (for the MLP and the toys).
#[derive(Debug, Clone)]
pub struct VectorData {
    /// The values, row-major.
    pub data: Vec<f64>,
    /// The dimension d.
    pub dim: usize,
}

impl TrainData<2> for VectorData {
    fn len(&self) -> usize {
        self.data.len() / self.dim
    }
    fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<2>, Option<Conditioning>) {
        let d = self.dim;
        let v: Vec<f64> = idx
            .iter()
            .flat_map(|&i| self.data[i * d..(i + 1) * d].iter().copied())
            .collect();
        (from_f64(&v, [idx.len(), d], device), None)
    }
}

/// Images, optionally class-conditional.
#[derive(Debug, Clone)]
pub struct ImageData {
    /// The images.
    pub images: ImageDataset,
    /// Feed one-hot labels as conditioning.
    pub use_labels: bool,
}

impl TrainData<4> for ImageData {
    fn len(&self) -> usize {
        self.images.num_images()
    }
    fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Option<Conditioning>) {
        let (x, labels) = self.images.batch(idx, device);
        (x, self.use_labels.then(|| Conditioning::labels(labels)))
    }
}

/// Where training writes, and how it reports.
#[derive(Debug, Clone, Default)]
pub struct TrainOutput {
    /// Checkpoint file (rewritten atomically every `checkpoint_every` steps).
    pub checkpoint: Option<PathBuf>,
    /// JSON-lines log (appended).
    pub log: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Stop after this many steps of this call (for tests of interruption); the
    /// checkpoint is written at the stop.
    pub stop_after: Option<usize>,
}

/// The outcome of a training call.
pub struct TrainResult<N> {
    /// The trained network (on the autodiff device).
    pub net: N,
    /// The EMA network (without autodiff).
    pub ema: N,
    /// Steps completed in all.
    pub step: usize,
    /// Mean loss over the last logging window.
    pub last_loss: f64,
    /// Wall time of this call in seconds.
    pub seconds: f64,
}

struct Flatten(Vec<Tensor<1>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .push(param.val().without_autodiff().flatten::<1>(0, D - 1));
    }
}

struct EmaUpdate {
    src: std::vec::IntoIter<Tensor<1>>,
    beta: f64,
}

impl ModuleMapper for EmaUpdate {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let src = self
            .src
            .next()
            .expect("EMA and model have the same parameters");
        let beta = self.beta;
        param.map(|e| {
            let shape = e.shape();
            e.mul_scalar(beta) + src.reshape(shape).mul_scalar(1.0 - beta)
        })
    }
}

/// ema ← β·ema + (1 − β)·θ, parameter by parameter.
pub fn ema_update<M: Module>(ema: M, model: &M, beta: f64) -> M {
    let mut f = Flatten(Vec::new());
    model.visit(&mut f);
    ema.map(&mut EmaUpdate {
        src: f.0.into_iter(),
        beta,
    })
}

/// Train `net` (created on an autodiff device) on `data`. With `resume`, the model,
/// EMA, optimizer state and step are restored from that checkpoint first. `extra`
/// is stored in the checkpoint beside the optimisation settings (e.g. the network
/// configuration), so that `sample` can rebuild the network.
pub fn train<const D: usize, N, T>(
    net: N,
    data: &T,
    cfg: &TrainConfig,
    extra: serde_json::Value,
    out: &TrainOutput,
    resume: Option<&CheckpointFile>,
) -> Result<TrainResult<N>>
where
    N: ScoreNetwork<D>,
    T: TrainData<D> + ?Sized,
{
    cfg.validate()?;
    if data.is_empty() {
        return Err(ScoreError::invalid("data", "the training set is empty"));
    }
    let device = net
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| ScoreError::invalid("net", "the network has no parameters"))?;
    let mut optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_grad_clipping(
            cfg.grad_clip
                .map(|c| GradientClippingConfig::Norm(c as f32)),
        )
        .init();
    let (mut net, mut ema, start) = match resume {
        Some(ck) => {
            let net = ck.load_into(net, "model.", true)?;
            let ema = if ck.has("ema.") {
                ck.load_into(net.valid(), "ema.", true)?
            } else {
                net.valid()
            };
            if let Some(b) = ck.optimizer_bytes() {
                optim = optim.from_bytes(Bytes::from_bytes_vec(b)).map_err(|e| {
                    ScoreError::Checkpoint {
                        path: ck.path.clone(),
                        detail: format!("optimizer: {e:?}"),
                    }
                })?;
            }
            (net, ema, ck.meta.step)
        }
        None => {
            let ema = net.valid();
            (net, ema, 0)
        }
    };
    if start >= cfg.steps {
        return Ok(TrainResult {
            net,
            ema,
            step: start,
            last_loss: f64::NAN,
            seconds: 0.0,
        });
    }
    let config_json = serde_json::json!({ "train": cfg, "extra": extra });
    let mut log = match &out.log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| ScoreError::io(p, e))?,
        ),
        None => None,
    };
    let end = out
        .stop_after
        .map_or(cfg.steps, |k| (start + k).min(cfg.steps));
    let bar = out.progress.then(|| {
        let b = indicatif::ProgressBar::new((cfg.steps) as u64).with_position(start as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} train [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    });
    let beta = 0.5f64.powf(1.0 / cfg.ema_halflife_steps);
    let t0 = Instant::now();
    let (mut window_loss, mut window_n, mut last_loss) = (0.0, 0usize, f64::NAN);
    let save = |net: &N,
                ema: &N,
                optim: &burn::optim::ModuleOptimizer,
                step: usize,
                loss: f64|
     -> Result<()> {
        let Some(path) = &out.checkpoint else {
            return Ok(());
        };
        let bytes = optim
            .into_bytes()
            .map_err(|e| ScoreError::invalid("optimizer", format!("{e:?}")))?;
        let meta = CheckpointMeta {
            format: FORMAT_VERSION,
            step,
            seed: cfg.seed,
            config: config_json.clone(),
            param_ids: Default::default(),
            stats: [("loss".to_string(), loss)].into(),
        };
        save_checkpoint(path, Some(net), Some(ema), Some(&bytes[..]), &meta)
    };
    for step in start..end {
        let lr = cfg.lr_at(step);
        let mut rng = stream_rng(cfg.seed, 1, step as u64);
        let idx: Vec<usize> = (0..cfg.batch_size)
            .map(|_| rng.random_range(0..data.len()))
            .collect();
        let (x0, cond) = data.batch(&idx, &device);
        let sigmas: Vec<f64> = (0..cfg.batch_size)
            .map(|_| cfg.precond.sample_training_sigma(&mut rng))
            .collect();
        let noise = randn(x0.dims(), &mut rng, &device);
        device.seed(rng.random());
        let loss = denoising_loss(
            &net,
            &cfg.precond,
            x0,
            tensor1(&sigmas, &device),
            noise,
            cond.as_ref(),
        )
        .mean();
        let value: f64 = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            if let Some(b) = &bar {
                b.abandon();
            }
            return Err(ScoreError::NonFiniteLoss { step, loss: value });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
        ema = ema_update(ema, &net, beta);
        window_loss += value;
        window_n += 1;
        let done = step + 1;
        if done % cfg.log_every.max(1) == 0 || done == end {
            last_loss = window_loss / window_n as f64;
            let secs = t0.elapsed().as_secs_f64();
            let rate = (done - start) as f64 / secs.max(1e-9);
            if let Some(f) = log.as_mut() {
                let line = serde_json::json!({"step": done, "loss": last_loss, "lr": lr, "steps_per_s": rate, "elapsed_s": secs});
                writeln!(f, "{line}")
                    .map_err(|e| ScoreError::io(out.log.clone().unwrap_or_default(), e))?;
            }
            if let Some(b) = &bar {
                b.set_message(format!("loss {last_loss:.4}  {rate:.2} steps/s"));
            }
            window_loss = 0.0;
            window_n = 0;
        }
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
        if done % cfg.checkpoint_every.max(1) == 0 || done == end {
            save(&net, &ema, &optim, done, last_loss)?;
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    Ok(TrainResult {
        net,
        ema,
        step: end,
        last_loss,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
