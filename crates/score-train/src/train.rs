//! Training: EDM's denoising score matching (Eq. 8) with Adam, learning-rate warm-up,
//! gradient clipping, an EMA of the weights, atomic checkpoints and exact resume.
//!
//! Every random draw of step s (minibatch indices, σ, noise, dropout) comes from
//! generators seeded by (seed, s) alone, and the checkpoint stores the model, the EMA,
//! Adam's moments and step counters, and the parameter ids. A run stopped after any
//! checkpoint and resumed therefore continues exactly as if it had never stopped
//! (tested in `tests/train.rs`).

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Bytes, Device, Tensor};
use rand::RngExt;

use crate::checkpoint::{CheckpointFile, CheckpointMeta, FORMAT_VERSION};
use crate::fit::{Clock, JsonLinesLog, Observer, ProgressBar, Schedule, TrainStep, fit};
use score_core::denoiser::Conditioning;
use score_core::error::{Result, ScoreError};
use score_core::precond::Precond;
use score_core::tensor::{from_f64, randn, stream_rng, tensor1};
use score_io::folder::StreamedFolder;
use score_io::images::ImageDataset;
use score_nn::precond::{ScoreNetwork, weighted_regression_loss};

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
    /// Clip the global gradient norm (over every parameter at once, as PyTorch's
    /// `clip_grad_norm_`) to this value; None: no clipping (EDM clips nothing).
    pub grad_clip: Option<f64>,
    /// EMA half-life in thousands of training images (EDM's `ema_halflife_kimg`, 500).
    #[serde(default = "default_ema_halflife_kimg")]
    pub ema_halflife_kimg: f64,
    /// EMA ramp-up (EDM's `ema_rampup_ratio`, 0.05): the half-life is at most this
    /// fraction of the images seen so far; None: no ramp-up.
    #[serde(default = "default_ema_rampup_ratio")]
    pub ema_rampup_ratio: Option<f64>,
    /// The preconditioning and its training σ distribution.
    pub precond: Precond,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Log every this many steps.
    pub log_every: usize,
    /// Run seed.
    pub seed: u64,
    /// Adam's (β₁, β₂) (EDM: 0.9, 0.999).
    #[serde(default = "default_adam_betas")]
    pub adam_betas: [f64; 2],
    /// Decoupled weight decay; > 0 switches Adam to AdamW (Loshchilov & Hutter 2019).
    #[serde(default)]
    pub weight_decay: f64,
    /// The learning-rate schedule after the warm-up.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Split each batch into this many micro-batches whose gradients are summed before
    /// one optimiser step (EDM's `batch_gpu`); the step is the same as with the whole
    /// batch at once, in less memory.
    #[serde(default = "default_grad_accumulation")]
    pub grad_accumulation: usize,
    /// How minibatches are drawn. A configuration without this field (checkpoints of
    /// earlier versions) reads as `Replacement`, the order those runs used, so that
    /// they resume exactly; new runs use `Epochs`.
    #[serde(default = "legacy_batch_order")]
    pub batches: BatchOrder,
    /// Probability of dropping a sample's condition (EDM's `label_dropout`; caption
    /// dropout for text: labels, context and token mask zeroed together), so that the
    /// network also learns the unconditional denoiser that classifier-free guidance
    /// ([`score_core::guidance`]) needs.
    #[serde(default)]
    pub label_dropout: f64,
}

/// The learning-rate schedule after the linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The peak rate for ever (EDM).
    #[default]
    Constant,
    /// EDM2's inverse square-root decay: lr / sqrt(max(step / ref_steps, 1)) (Karras
    /// et al. 2024, `learning_rate_schedule` with `ref_batches` = ref_steps).
    InverseSqrt {
        /// Steps before the decay starts (EDM2: 70 000 batches).
        ref_steps: usize,
    },
}

/// How training minibatches are drawn from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchOrder {
    /// Shuffled epochs: every example once per epoch, in an order drawn from (seed,
    /// epoch); batches run across epoch boundaries.
    Epochs,
    /// Independent uniform draws with replacement.
    Replacement,
}

fn default_adam_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_grad_accumulation() -> usize {
    1
}

fn legacy_batch_order() -> BatchOrder {
    BatchOrder::Replacement
}

fn default_ema_halflife_kimg() -> f64 {
    500.0
}

fn default_ema_rampup_ratio() -> Option<f64> {
    Some(0.05)
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            lr: 1e-3,
            warmup_steps: 100,
            grad_clip: None,
            ema_halflife_kimg: default_ema_halflife_kimg(),
            ema_rampup_ratio: default_ema_rampup_ratio(),
            precond: Precond::default(),
            checkpoint_every: 250,
            log_every: 50,
            seed: 0,
            adam_betas: default_adam_betas(),
            weight_decay: 0.0,
            lr_schedule: LrSchedule::Constant,
            grad_accumulation: 1,
            batches: BatchOrder::Epochs,
            label_dropout: 0.0,
        }
    }
}

impl TrainConfig {
    /// Check the settings.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(ScoreError::invalid("steps", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(ScoreError::invalid("batch_size", "must be at least 1"));
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return Err(ScoreError::invalid(
                "checkpoint_every/log_every (--checkpoint-every)",
                "must be at least 1 (0 used to mean every step)",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(ScoreError::invalid(
                "lr",
                format!("must be positive and finite, got {}", self.lr),
            ));
        }
        if !(self.ema_halflife_kimg > 0.0 && self.ema_halflife_kimg.is_finite()) {
            return Err(ScoreError::invalid(
                "ema_halflife_kimg",
                format!(
                    "must be positive and finite, got {}",
                    self.ema_halflife_kimg
                ),
            ));
        }
        if self
            .ema_rampup_ratio
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return Err(ScoreError::invalid(
                "ema_rampup_ratio",
                "must be positive and finite",
            ));
        }
        if self.grad_accumulation == 0 || !self.batch_size.is_multiple_of(self.grad_accumulation) {
            return Err(ScoreError::invalid(
                "grad_accumulation",
                format!(
                    "must be at least 1 and divide the batch size {}, got {}",
                    self.batch_size, self.grad_accumulation
                ),
            ));
        }
        let [b1, b2] = self.adam_betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return Err(ScoreError::invalid(
                "adam_betas",
                format!("each must lie in [0, 1), got ({b1}, {b2})"),
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(ScoreError::invalid(
                "weight_decay",
                format!("must be non-negative and finite, got {}", self.weight_decay),
            ));
        }
        if matches!(self.lr_schedule, LrSchedule::InverseSqrt { ref_steps: 0 }) {
            return Err(ScoreError::invalid(
                "lr_schedule",
                "ref_steps must be positive",
            ));
        }
        if !(0.0..=1.0).contains(&self.label_dropout) {
            return Err(ScoreError::invalid(
                "label_dropout",
                format!("must lie in [0, 1], got {}", self.label_dropout),
            ));
        }
        if self.grad_clip.is_some_and(|c| !(c > 0.0)) {
            return Err(ScoreError::invalid("grad_clip", "must be positive"));
        }
        Ok(())
    }

    /// The EMA decay β of the update after `step` steps (EDM's training loop): the
    /// half-life in images is min(H, ratio · images seen before the step), and
    /// β = 0.5^(batch / half-life). It depends on images, not steps, so neither the
    /// batch size nor a longer `steps` changes the EMA's horizon.
    pub fn ema_beta(&self, step: usize) -> f64 {
        let seen = (step * self.batch_size) as f64;
        let mut halflife = self.ema_halflife_kimg * 1000.0;
        if let Some(r) = self.ema_rampup_ratio {
            halflife = halflife.min(seen * r);
        }
        0.5f64.powf(self.batch_size as f64 / halflife.max(1e-8))
    }

    /// The learning rate at `step`: linear warm-up, then the schedule.
    pub fn lr_at(&self, step: usize) -> f64 {
        let warm = ((step + 1) as f64 / self.warmup_steps.max(1) as f64).min(1.0);
        let decay = match self.lr_schedule {
            LrSchedule::Constant => 1.0,
            LrSchedule::InverseSqrt { ref_steps } => {
                1.0 / (step as f64 / ref_steps.max(1) as f64).max(1.0).sqrt()
            }
        };
        self.lr * warm * decay
    }

    /// The optimiser these settings describe: Adam, or AdamW with weight decay.
    pub fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        let [b1, b2] = self.adam_betas.map(|b| b as f32);
        if self.weight_decay > 0.0 {
            burn::optim::AdamWConfig::new()
                .with_beta_1(b1)
                .with_beta_2(b2)
                .with_epsilon(1e-8)
                .with_weight_decay(self.weight_decay as f32)
                .init()
        } else {
            AdamConfig::new()
                .with_beta_1(b1)
                .with_beta_2(b2)
                .with_epsilon(1e-8)
                .init()
        }
    }

    /// The example indices of step `step` on `n` examples, and the generator for the
    /// step's other draws (σ, noise, dropout seed): a pure function of (seed, step).
    pub fn batch_indices(&self, step: usize, n: usize) -> (Vec<usize>, rand::rngs::StdRng) {
        let mut rng = stream_rng(self.seed, 1, step as u64);
        let idx = match self.batches {
            BatchOrder::Replacement => (0..self.batch_size)
                .map(|_| rng.random_range(0..n))
                .collect(),
            BatchOrder::Epochs => {
                let start = step * self.batch_size;
                let mut perm: Option<(usize, Vec<usize>)> = None;
                (start..start + self.batch_size)
                    .map(|p| {
                        let epoch = p / n;
                        if perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
                            let mut v: Vec<usize> = (0..n).collect();
                            rand::seq::SliceRandom::shuffle(
                                &mut v[..],
                                &mut stream_rng(self.seed, 2, epoch as u64),
                            );
                            perm = Some((epoch, v));
                        }
                        perm.as_ref().map_or(0, |(_, v)| v[p % n])
                    })
                    .collect()
            }
        };
        (idx, rng)
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
    /// The examples at `idx` and their conditioning (an error where they are read
    /// from files that went missing).
    fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor<D>, Option<Conditioning>)>;
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
    fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor<2>, Option<Conditioning>)> {
        let d = self.dim;
        let v: Vec<f64> = idx
            .iter()
            .flat_map(|&i| self.data[i * d..(i + 1) * d].iter().copied())
            .collect();
        Ok((from_f64(&v, [idx.len(), d], device), None))
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
    fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor<4>, Option<Conditioning>)> {
        let (x, labels) = self.images.batch(idx, device);
        Ok((x, self.use_labels.then(|| Conditioning::labels(labels))))
    }
}

/// Images decoded from a folder at each batch ([`StreamedFolder`]), so that memory
/// does not grow with the number of images. The examples are the same, in the same
/// order and to the bit, as [`ImageData`] over [`ImageDataset::from_folder_at`] with
/// [`ImageDataset::balanced_subset`] and [`ImageDataset::with_xflip`].
#[derive(Debug, Clone)]
pub struct StreamedImageData {
    /// The folder.
    pub folder: StreamedFolder,
    /// Each example: the image behind it and whether it is mirrored left-right.
    pub order: Vec<(usize, bool)>,
    /// Feed one-hot labels as conditioning.
    pub use_labels: bool,
}

impl StreamedImageData {
    /// The folder's first `subset` images (class-balanced; 0 = all), then with `xflip`
    /// their mirrors after them (EDM's dataset x-flip).
    pub fn new(folder: StreamedFolder, subset: usize, xflip: bool, use_labels: bool) -> Self {
        let images: Vec<usize> = match subset {
            0 => (0..folder.len()).collect(),
            n => score_io::images::balanced_indices(&folder.labels, folder.num_classes, n),
        };
        let mut order: Vec<(usize, bool)> = images.iter().map(|&i| (i, false)).collect();
        if xflip {
            order.extend(images.iter().map(|&i| (i, true)));
        }
        Self {
            folder,
            order,
            use_labels,
        }
    }

    /// Example `k`'s pixels, `[c, h, w]` in [−1, 1].
    pub fn example(&self, k: usize) -> Result<Vec<f32>> {
        let (i, flip) = self.order[k];
        let mut px = self.folder.image(i)?;
        if flip {
            let w = self.folder.image_shape[2].max(1);
            px.chunks_exact_mut(w).for_each(|row| row.reverse());
        }
        Ok(px)
    }

    /// Example `k`'s label.
    pub fn label(&self, k: usize) -> usize {
        self.folder.labels[self.order[k].0]
    }
}

impl TrainData<4> for StreamedImageData {
    fn len(&self) -> usize {
        self.order.len()
    }
    fn batch(&self, idx: &[usize], device: &Device) -> Result<(Tensor<4>, Option<Conditioning>)> {
        let classes = self.folder.num_classes;
        let mut px = Vec::with_capacity(idx.len() * self.folder.image_len());
        let mut onehot = vec![0f32; idx.len() * classes];
        for (b, &k) in idx.iter().enumerate() {
            px.extend(self.example(k)?);
            onehot[b * classes + self.label(k)] = 1.0;
        }
        let [c, h, w] = self.folder.image_shape;
        let x = score_core::tensor::from_f32(px, [idx.len(), c, h, w], device);
        let labels = score_core::tensor::from_f32(onehot, [idx.len(), classes], device);
        Ok((x, self.use_labels.then(|| Conditioning::labels(labels))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_guard_stops_a_blow_up_but_not_noise() {
        // Noisy but stable: values within a factor of 20 of the median never trigger.
        let mut g = DivergenceGuard::new(10, 100.0, 5);
        for i in 0..1000 {
            assert!(!g.observe(0.05 * (1.0 + 19.0 * ((i * 7919) % 13) as f64 / 12.0)));
        }
        // A blow-up to 1e23 triggers after exactly `patience` steps.
        let stop = (0..100).position(|_| g.observe(1e23)).unwrap();
        assert_eq!(stop, 4);
        // A single spike does not.
        let mut g = DivergenceGuard::new(10, 100.0, 5);
        (0..20).for_each(|_| assert!(!g.observe(1.0)));
        assert!(!g.observe(1e9));
        (0..20).for_each(|_| assert!(!g.observe(1.0)));
    }

    #[test]
    fn ema_horizon_is_in_images_not_steps() {
        let cfg = |batch_size, steps| TrainConfig {
            batch_size,
            steps,
            ema_halflife_kimg: 10.0,
            ema_rampup_ratio: None,
            ..TrainConfig::default()
        };
        // The weight left on the initial EMA after 64 000 images: 0.5^(64000/10000),
        // whatever the batch size and the run length.
        for (b, total) in [(32, 100), (64, 5000), (128, 500)] {
            let c = cfg(b, total);
            let left: f64 = (0..64_000 / b).map(|s| c.ema_beta(s)).product();
            assert!((left - 0.5f64.powf(6.4)).abs() < 1e-12, "batch {b}: {left}");
        }
        // EDM's ramp-up: the first update copies the weights (β = 0), and the half-life
        // is 5% of the images seen until it reaches H.
        let c = TrainConfig {
            batch_size: 100,
            ema_halflife_kimg: 10.0,
            ema_rampup_ratio: Some(0.05),
            ..TrainConfig::default()
        };
        assert_eq!(c.ema_beta(0), 0.0);
        assert!((c.ema_beta(1000) - 0.5f64.powf(100.0 / 5000.0)).abs() < 1e-15);
        assert!((c.ema_beta(1_000_000) - 0.5f64.powf(100.0 / 10_000.0)).abs() < 1e-15);
    }

    #[test]
    fn gradient_clipping_uses_one_global_norm() {
        use score_nn::mlp::MlpConfig;
        let device = Device::flex().autodiff();
        let net = MlpConfig::new(3)
            .with_hidden(8)
            .with_blocks(1)
            .init(&device);
        let x = randn([5, 3], &mut stream_rng(1, 0, 0), &device);
        // The same deterministic loss twice: two identical sets of gradients.
        let grads = || {
            let loss = score_nn::precond::denoising_loss(
                &net,
                &Precond::edm(0.5),
                x.clone(),
                tensor1(&[0.1, 0.5, 1.0, 3.0, 9.0], &device),
                x.clone().mul_scalar(0.5),
                None,
            )
            .mean();
            GradientsParams::from_grads(loss.backward(), &net)
        };
        let mut unclipped = grads();
        let norm = clip_global_norm(&net, &mut unclipped, None).unwrap();
        assert!(norm > 0.0);
        let mut clipped = grads();
        assert_eq!(
            clip_global_norm(&net, &mut clipped, Some(norm / 4.0)).unwrap(),
            norm
        );
        let after = clip_global_norm(&net, &mut clipped, None).unwrap();
        // Scaled by (norm/4)/(norm + 1e-6): the global norm is norm/4 to 1e-6 relative,
        // and every tensor is scaled by the same factor (per-tensor clipping would
        // leave small tensors untouched).
        assert!(
            (after - norm / 4.0).abs() <= 1e-5 * norm,
            "{after} vs {}",
            norm / 4.0
        );
        let mut ratios = Vec::new();
        struct Ratio<'a>(&'a GradientsParams, &'a GradientsParams, &'a mut Vec<f64>);
        impl ModuleVisitor for Ratio<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if let (Some(a), Some(b)) = (self.0.get::<D>(p.id), self.1.get::<D>(p.id)) {
                    let na = score_core::tensor::to_vec_f64(a.powi_scalar(2).sum()).unwrap()[0];
                    let nb = score_core::tensor::to_vec_f64(b.powi_scalar(2).sum()).unwrap()[0];
                    if nb > 1e-20 {
                        self.2.push((na / nb).sqrt());
                    }
                }
            }
        }
        net.visit(&mut Ratio(&clipped, &unclipped, &mut ratios));
        assert!(ratios.len() > 2);
        // float32 gradients: each ratio to about 1e-6 relative.
        assert!(ratios.iter().all(|r| (r - 0.25).abs() < 1e-5), "{ratios:?}");
    }

    #[test]
    fn epochs_visit_every_example_once_and_replacement_is_the_old_draw() {
        let cfg = TrainConfig {
            batch_size: 4,
            seed: 3,
            ..TrainConfig::default()
        };
        // 10 examples, batches of 4: steps 0..5 cover exactly two epochs.
        let all: Vec<usize> = (0..5).flat_map(|s| cfg.batch_indices(s, 10).0).collect();
        for epoch in all.chunks(10) {
            let mut e = epoch.to_vec();
            e.sort();
            assert_eq!(e, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(all[..10], all[10..]);
        // A configuration without `batches` (an older checkpoint's) draws with
        // replacement from the step's generator first, as those runs did.
        let mut old = serde_json::to_value(&cfg).unwrap();
        old.as_object_mut().unwrap().remove("batches");
        let old: TrainConfig = serde_json::from_value(old).unwrap();
        assert_eq!(old.batches, BatchOrder::Replacement);
        let mut rng = stream_rng(3, 1, 7);
        let want: Vec<usize> = (0..4).map(|_| rng.random_range(0..10)).collect();
        assert_eq!(old.batch_indices(7, 10).0, want);
    }

    #[test]
    fn inverse_sqrt_schedule_follows_edm2() {
        let cfg = TrainConfig {
            lr: 1e-2,
            warmup_steps: 1,
            lr_schedule: LrSchedule::InverseSqrt { ref_steps: 100 },
            ..TrainConfig::default()
        };
        assert_eq!(cfg.lr_at(50), 1e-2);
        assert!((cfg.lr_at(400) - 1e-2 / 2.0).abs() < 1e-15);
    }

    #[test]
    fn gradient_accumulation_takes_the_same_step() {
        use score_nn::mlp::MlpConfig;
        let device = Device::flex().autodiff();
        let net = MlpConfig::new(2)
            .with_hidden(16)
            .with_blocks(1)
            .init(&device);
        let data = VectorData {
            data: (0..64)
                .map(|i| ((i * 37 % 64) as f64 / 32.0) - 1.0)
                .collect(),
            dim: 2,
        };
        let run = |k: usize| {
            let cfg = TrainConfig {
                steps: 3,
                batch_size: 8,
                grad_accumulation: k,
                ema_rampup_ratio: None,
                ..TrainConfig::default()
            };
            let out = train(
                net.clone(),
                &data,
                &cfg,
                serde_json::Value::Null,
                &TrainOutput::default(),
                None,
            )
            .unwrap();
            crate::checkpoint::collect_params(&out.net)
        };
        let (one, four) = (run(1), run(4));
        for ((p, _, a), (_, _, b)) in one.iter().zip(&four) {
            let (a, b) = (
                a.try_to_vec::<f32>().unwrap(),
                b.try_to_vec::<f32>().unwrap(),
            );
            // Sums of float32 per-sample losses in another order: agreement to a few
            // float32 ulps of the parameters' scale after 3 Adam steps of size ~lr.
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{p}: {worst}");
        }
    }

    #[test]
    fn label_dropout_zeroes_whole_rows_with_its_probability() {
        let device = Device::flex();
        let ones = || Conditioning::labels(Tensor::<2>::ones([400, 3], &device));
        let rows_kept = |p: f64| {
            let mut c = ones();
            drop_labels(&mut c, p, &mut stream_rng(0, 9, 0), &device);
            let v = score_core::tensor::to_vec_f64(c.class_labels.unwrap()).unwrap();
            assert!(
                v.chunks(3).all(|r| r.iter().all(|&x| x == r[0])),
                "partial row"
            );
            v.chunks(3).filter(|r| r[0] == 1.0).count()
        };
        assert_eq!(rows_kept(0.0), 400);
        assert_eq!(rows_kept(1.0), 0);
        // Binomial(400, 0.75): mean 300, sd 8.7; 5 sd allowed.
        let kept = rows_kept(0.25);
        assert!((kept as f64 - 300.0).abs() < 43.5, "{kept}");
    }

    #[test]
    fn caption_dropout_zeroes_context_and_token_mask_of_the_same_rows() {
        let device = Device::flex();
        let mut c = Conditioning {
            context: Some(Tensor::<2>::ones([200, 4], &device)),
            tokens: Some(Tensor::<3>::ones([200, 3, 4], &device)),
            token_mask: Some(Tensor::<2>::ones([200, 3], &device)),
            ..Default::default()
        };
        drop_labels(&mut c, 0.5, &mut stream_rng(0, 9, 0), &device);
        let ctx = score_core::tensor::to_vec_f64(c.context.unwrap()).unwrap();
        let mask = score_core::tensor::to_vec_f64(c.token_mask.unwrap()).unwrap();
        let kept: Vec<bool> = ctx.chunks(4).map(|r| r[0] == 1.0).collect();
        assert_eq!(
            kept,
            mask.chunks(3).map(|r| r[0] == 1.0).collect::<Vec<_>>()
        );
        assert!(mask.chunks(3).all(|r| r.iter().all(|&x| x == r[0])));
        // Binomial(200, 0.5): mean 100, sd 7.1; 5 sd allowed.
        let n = kept.iter().filter(|&&k| k).count();
        assert!((n as f64 - 100.0).abs() < 35.5, "{n}");
    }

    #[test]
    fn trim_log_drops_partial_lines_and_steps_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.jsonl");
        std::fs::write(&p, "{\"step\":20}\n{\"step\":40}\n{\"step\":60}\n{\"st").unwrap();
        trim_log(&p, 40).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"step\":20}\n{\"step\":40}\n"
        );
    }
}

/// Where training writes, how it reports, and the further devices it computes on.
#[derive(Debug, Clone, Default)]
pub struct TrainOutput {
    /// Data parallelism: autodiff devices besides the network's that share each batch's
    /// `grad_accumulation` micro-batches (which must then be a multiple of the device
    /// count). The step does not depend on them (see [`objective_gradients`]), so they
    /// are not part of the configuration, and a run may resume on other devices.
    pub replicas: Vec<Device>,
    /// Checkpoint file (rewritten atomically every `checkpoint_every` steps).
    pub checkpoint: Option<PathBuf>,
    /// JSON-lines log (appended).
    pub log: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Stop after this many steps of this call (for tests of interruption); the
    /// checkpoint is written at the stop.
    pub stop_after: Option<usize>,
    /// Also keep every checkpoint written, as `<stem>.step<N>.safetensors` beside the
    /// checkpoint (for studies over training, e.g. `cargo xtask experiment ev-training`).
    pub keep_checkpoints: bool,
}

/// Where [`TrainOutput::keep_checkpoints`] keeps the checkpoint of `step`:
/// `<dir>/<stem>.step<step, 7 digits>.safetensors`.
pub fn kept_checkpoint_path(checkpoint: &Path, step: usize) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map_or("checkpoint".into(), |s| s.to_string_lossy().into_owned());
    checkpoint.with_file_name(format!("{stem}.step{step:07}.safetensors"))
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

/// The divergence rule: the step losses are cut into windows of `window` steps and the
/// median of each full window is taken; `best` is the lowest such median so far. A
/// step whose loss exceeds `factor × best` is high, and `patience` high steps in a row
/// stop the run with [`ScoreError::Diverged`]. A finite loss that has grown by orders of
/// magnitude (1e23 where it was 0.05) is thus caught within `patience` steps, while the
/// noisy but stable losses of EDM training (per-batch values within a factor of a few
/// of their median) never come near the factor. The reference restarts on resume.
#[derive(Debug, Clone)]
pub struct DivergenceGuard {
    /// Window length in steps.
    pub window: usize,
    /// How far above the best median a loss must be to count as high.
    pub factor: f64,
    /// Consecutive high steps that stop the run.
    pub patience: usize,
    current: Vec<f64>,
    best: Option<f64>,
    high: usize,
}

impl Default for DivergenceGuard {
    fn default() -> Self {
        Self::new(50, 100.0, 50)
    }
}

impl DivergenceGuard {
    /// A guard with the given window, factor and patience.
    pub fn new(window: usize, factor: f64, patience: usize) -> Self {
        Self {
            window: window.max(1),
            factor,
            patience: patience.max(1),
            current: Vec::new(),
            best: None,
            high: 0,
        }
    }

    /// The best window median so far.
    pub fn reference(&self) -> Option<f64> {
        self.best
    }

    /// Record one step's loss; true when the rule says the run diverged.
    pub fn observe(&mut self, loss: f64) -> bool {
        self.high = match self.best {
            Some(b) if loss > self.factor * b => self.high + 1,
            _ => 0,
        };
        self.current.push(loss);
        if self.current.len() == self.window {
            self.current.sort_by(f64::total_cmp);
            let median = self.current[self.window / 2];
            self.best = Some(self.best.map_or(median, |b| b.min(median)));
            self.current.clear();
        }
        self.high >= self.patience
    }
}

/// What one training step regresses, as an [`Objective`] builds it: the network input,
/// its target and the conditioning, for per-sample σ.
pub struct Regression<const D: usize> {
    /// The network's (noisy) input y.
    pub input: Tensor<D>,
    /// What D(y; σ, cond) should output.
    pub target: Tensor<D>,
    /// Conditioning (labels after dropout, augmentation parameters, context).
    pub cond: Option<Conditioning>,
    /// A weight on each element's squared error, `[1, …]`, the same for every sample
    /// ([`score_nn::precond::weighted_regression_loss`]); `None`: 1.
    pub weight: Option<Tensor<D>>,
}

/// A training objective: turns clean data x₀, per-sample σ and Gaussian noise n into a
/// [`Regression`], trained with the one loss λ(σ)·‖D(y; σ, cond) − target‖²
/// ([`score_nn::regression_loss`]) by the one training loop ([`train_with`]). Plain
/// denoising is [`Denoising`]; ScoreAug and EDM's non-leaky augmentation (crate
/// `scoreaug`) are others.
pub trait Objective<const D: usize> {
    /// The regression of one batch. `rng` is the step's own stream, so that a resumed
    /// run draws what an uninterrupted one would have.
    fn regression(
        &self,
        x0: Tensor<D>,
        sigma: &Tensor<1>,
        noise: Tensor<D>,
        cond: Option<Conditioning>,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<Regression<D>>;

    /// A description recorded in every checkpoint's config under `objective`.
    fn describe(&self) -> serde_json::Value;
}

/// EDM's denoising objective: y = x₀ + σn, target x₀.
#[derive(Debug, Clone, Copy, Default)]
pub struct Denoising;

impl<const D: usize> Objective<D> for Denoising {
    fn regression(
        &self,
        x0: Tensor<D>,
        sigma: &Tensor<1>,
        noise: Tensor<D>,
        cond: Option<Conditioning>,
        _rng: &mut rand::rngs::StdRng,
    ) -> Result<Regression<D>> {
        let input = x0.clone() + noise * score_core::tensor::per_sample::<D>(sigma.clone());
        Ok(Regression {
            input,
            target: x0,
            cond,
            weight: None,
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "name": "denoising" })
    }
}

/// One training batch: per-sample σ and the objective's regression.
struct Batch<const D: usize> {
    sigma: Tensor<1>,
    reg: Regression<D>,
}

/// Drop the condition of each sample with probability `p` (EDM's label dropout;
/// caption dropout for text): one draw per sample zeroes its class labels, context
/// vector and token mask together, the "no condition" input of
/// [`score_core::guidance::unconditional`].
fn drop_labels(c: &mut Conditioning, p: f64, rng: &mut rand::rngs::StdRng, device: &Device) {
    if p <= 0.0 {
        return;
    }
    let rows = [&c.class_labels, &c.context, &c.token_mask]
        .into_iter()
        .flatten()
        .map(|t| t.dims()[0])
        .next();
    let Some(b) = rows else {
        return;
    };
    let keep: Vec<f64> = (0..b)
        .map(|_| (rng.random::<f64>() >= p) as u8 as f64)
        .collect();
    let keep = tensor1(&keep, device).reshape([b, 1]);
    for t in [&mut c.class_labels, &mut c.context, &mut c.token_mask] {
        if let Some(x) = t.take() {
            let k = x.dims()[1];
            *t = Some(x * keep.clone().expand([b, k]));
        }
    }
}

/// Serialises the forward passes of replicas on several devices: burn 0.22.1 draws
/// random numbers (dropout) from one stream per backend, shared by its devices, so a
/// micro-batch's seeding and the draws of its forward pass must not interleave with
/// another's. The backward passes, most of a step's work, run at once.
static FORWARD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Micro-batch `j` of `grad_accumulation` on `net`'s device: its summed per-sample
/// losses / batch size, and their gradients. Its dropout is seeded `seed + j`, so
/// that what it draws does not depend on the device or thread that computes it.
fn micro_gradients<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    cfg: &TrainConfig,
    batch: &Batch<D>,
    j: usize,
    seed: u64,
) -> (f64, GradientsParams) {
    let rows = batch.sigma.dims()[0];
    let micro = rows / cfg.grad_accumulation;
    let device = net.devices().swap_remove(0);
    let cut = |t: &Tensor<D>| t.clone().narrow(0, j * micro, micro).to_device(&device);
    let cond = batch.reg.cond.as_ref();
    let cond = cond.map(|c| c.narrow(j * micro, micro).to_device(&device));
    let loss = {
        let _alone = FORWARD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(seed.wrapping_add(j as u64));
        let sigma = batch.sigma.clone().narrow(0, j * micro, micro);
        weighted_regression_loss(
            net,
            &cfg.precond,
            (
                cut(&batch.reg.input),
                sigma.to_device(&device),
                cut(&batch.reg.target),
            ),
            cond.as_ref(),
            batch.reg.weight.clone().map(|w| w.to_device(&device)),
        )
        .sum()
        .div_scalar(rows as f64)
    };
    let value = loss.clone().into_scalar::<f32>() as f64;
    (value, GradientsParams::from_grads(loss.backward(), net))
}

/// The micro-batches `first, first + stride, …` on one replica, their gradients moved
/// to `main`.
fn replica_gradients<const D: usize, N: ScoreNetwork<D>>(
    replica: &N,
    cfg: &TrainConfig,
    batch: &Batch<D>,
    (first, stride): (usize, usize),
    (seed, main): (u64, &Device),
) -> Vec<(f64, GradientsParams)> {
    (first..cfg.grad_accumulation)
        .step_by(stride)
        .map(|j| {
            let (v, g) = micro_gradients(replica, cfg, batch, j, seed);
            (v, g.to_device(main, replica))
        })
        .collect()
}

/// The loss of the batch's mean and its gradients, over `grad_accumulation`
/// micro-batches: each contributes its summed per-sample losses / batch_size, so the
/// gradients add up to those of the whole batch at once. With `replicas` (data
/// parallelism), micro-batch j runs on device j mod (1 + replicas) (device 0: `net`'s),
/// each device in its own thread; the gradients are brought to `net`'s device and added
/// in the order of j, so the step is the same whatever the number of devices (to the
/// devices' own arithmetic: bit for bit when they are one backend).
fn accumulated_gradients<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    cfg: &TrainConfig,
    batch: &Batch<D>,
    replicas: &[Device],
    seed: u64,
) -> (f64, GradientsParams) {
    let main = batch.sigma.device();
    let k = 1 + replicas.len();
    let parts: Vec<Vec<(f64, GradientsParams)>> = if k == 1 {
        vec![replica_gradients(net, cfg, batch, (0, 1), (seed, &main))]
    } else {
        // Owned copies (a module is `Send`, not `Sync`); they share `net`'s parameter ids.
        let nets = std::iter::once(net.clone()).chain(replicas.iter().map(|d| net.clone().fork(d)));
        std::thread::scope(|s| {
            let workers: Vec<_> = nets
                .enumerate()
                .map(|(d, r)| {
                    let main = &main;
                    s.spawn(move || replica_gradients(&r, cfg, batch, (d, k), (seed, main)))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    // Micro-batch j is parts[j % k][j / k]: add them in the order of j.
    let mut parts: Vec<_> = parts.into_iter().map(Vec::into_iter).collect();
    let mut accum = burn::optim::GradientsAccumulator::<N>::new();
    let mut value = 0.0;
    for j in 0..cfg.grad_accumulation {
        let (v, g) = parts[j % k].next().expect("one result per micro-batch");
        value += v;
        accum.accumulate(net, g);
    }
    (value, accum.grads())
}

/// A network, its EMA and its optimiser: what one optimisation step of any loss
/// updates. [`train_with`] drives one; distillation (crate `disback`) drives two (the
/// generator and the fake score) with the same step: global-norm clipping, the
/// learning-rate schedule, Adam/AdamW and EDM's EMA.
pub struct Learner<N> {
    /// The network being optimised (on an autodiff device).
    pub net: N,
    /// Its exponential moving average (without autodiff).
    pub ema: N,
    optim: burn::optim::ModuleOptimizer,
}

impl<N: Module> Learner<N> {
    /// A fresh optimiser for `net` with the EMA at `net`.
    pub fn new(net: N, cfg: &TrainConfig) -> Self {
        Self {
            ema: net.valid(),
            net,
            optim: cfg.optimizer(),
        }
    }

    /// The network, EMA and optimiser state stored in `ck` under `prefix`/`"ema."`/
    /// `"optimizer"` (the layout of [`crate::checkpoint::save_checkpoint`]), loaded into `net`'s structure.
    pub fn restore(net: N, cfg: &TrainConfig, ck: &CheckpointFile) -> Result<Self> {
        let net = ck.load_into(net, "model.", true)?;
        let ema = if ck.has("ema.") {
            ck.load_into(net.valid(), "ema.", true)?
        } else {
            net.valid()
        };
        let mut optim = cfg.optimizer();
        if let Some(b) = ck.optimizer_bytes() {
            optim =
                optim
                    .from_bytes(Bytes::from_bytes_vec(b))
                    .map_err(|e| ScoreError::Checkpoint {
                        path: ck.path.clone(),
                        detail: format!("optimizer: {e:?}"),
                    })?;
        }
        Ok(Self { net, ema, optim })
    }

    /// One optimisation step number `step` with `grads`: clip the global norm to
    /// `cfg.grad_clip`, step at `cfg.lr_at(step)`, update the EMA with
    /// `cfg.ema_beta(step)`. Returns the gradient norm before clipping.
    pub fn step(
        &mut self,
        cfg: &TrainConfig,
        step: usize,
        mut grads: GradientsParams,
    ) -> Result<f64> {
        let norm = clip_global_norm(&self.net, &mut grads, cfg.grad_clip)?;
        // The optimiser consumes the network; the EMA holds its place meanwhile.
        let net = std::mem::replace(&mut self.net, self.ema.clone());
        self.net = self.optim.step(cfg.lr_at(step), net, grads);
        let ema = std::mem::replace(&mut self.ema, self.net.valid());
        self.ema = ema_update(ema, &self.net, cfg.ema_beta(step));
        Ok(norm)
    }

    /// The optimiser state as bytes (for a checkpoint).
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>> {
        Ok(self
            .optim
            .into_bytes()
            .map_err(|e| ScoreError::invalid("optimizer", format!("{e:?}")))?
            .to_vec())
    }

    /// The checkpoint of this learner (model, EMA, optimiser) with `meta`, as bytes.
    pub fn checkpoint_bytes(&self, meta: &CheckpointMeta) -> Result<Vec<u8>> {
        let opt = self.optimizer_bytes()?;
        crate::checkpoint::checkpoint_bytes(Some(&self.net), Some(&self.ema), Some(&opt), meta)
    }
}

/// The loss and gradients of one denoising-score-matching step of `objective` on the
/// clean batch `x0` (on `net`'s autodiff device): per-sample σ from `cfg.precond`,
/// Gaussian noise, the device's dropout seed and label dropout, all drawn from `rng` in
/// that order, then [`Objective::regression`] and the loss of every objective
/// ([`score_nn::regression_loss`]) over `cfg.grad_accumulation` micro-batches, spread over `net`'s
/// device and `replicas` (data parallelism; `&[]` for one device).
pub fn objective_gradients<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    cfg: &TrainConfig,
    objective: &dyn Objective<D>,
    x0: Tensor<D>,
    cond: Option<Conditioning>,
    rng: &mut rand::rngs::StdRng,
    replicas: &[Device],
) -> Result<(f64, GradientsParams)> {
    let precond = cfg.precond;
    let draw = |r: &mut rand::rngs::StdRng| precond.sample_training_sigma(r);
    let (batch, seed) = draw_batch(cfg, objective, x0, cond, rng, &draw)?;
    Ok(accumulated_gradients(net, cfg, &batch, replicas, seed))
}

/// [`objective_gradients`] on one device with per-sample σ drawn by `draw_sigma`
/// instead of the preconditioning's training distribution (distillation trains its fake
/// score on the σ its loss queries).
pub fn objective_gradients_with<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    cfg: &TrainConfig,
    objective: &dyn Objective<D>,
    x0: Tensor<D>,
    cond: Option<Conditioning>,
    rng: &mut rand::rngs::StdRng,
    draw_sigma: &dyn Fn(&mut rand::rngs::StdRng) -> f64,
) -> Result<(f64, GradientsParams)> {
    let (batch, seed) = draw_batch(cfg, objective, x0, cond, rng, draw_sigma)?;
    Ok(accumulated_gradients(net, cfg, &batch, &[], seed))
}

/// A step's random draws, in order (σ, noise, dropout seed, label dropout, the
/// objective's own), and the regression they make.
fn draw_batch<const D: usize>(
    cfg: &TrainConfig,
    objective: &dyn Objective<D>,
    x0: Tensor<D>,
    mut cond: Option<Conditioning>,
    rng: &mut rand::rngs::StdRng,
    draw_sigma: &dyn Fn(&mut rand::rngs::StdRng) -> f64,
) -> Result<(Batch<D>, u64)> {
    let device = x0.device();
    if !x0.dims()[0].is_multiple_of(cfg.grad_accumulation.max(1)) {
        return Err(ScoreError::invalid(
            "grad_accumulation",
            format!(
                "{} does not divide the batch of {}",
                cfg.grad_accumulation,
                x0.dims()[0]
            ),
        ));
    }
    let sigmas: Vec<f64> = (0..x0.dims()[0]).map(|_| draw_sigma(rng)).collect();
    let noise = randn(x0.dims(), rng, &device);
    let seed: u64 = rng.random();
    if let Some(c) = cond.as_mut() {
        drop_labels(c, cfg.label_dropout, rng, &device);
    }
    let sigma = tensor1(&sigmas, &device);
    let reg = objective.regression(x0, &sigma, noise, cond, rng)?;
    Ok((Batch { sigma, reg }, seed))
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

struct GradSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + sq,
                None => sq,
            });
        }
    }
}

struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    scale: f64,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}

/// The global gradient norm ‖g‖₂ over every parameter of `module`; when `max_norm` is
/// given and exceeded, every gradient is scaled by max_norm/‖g‖₂ (PyTorch's
/// `clip_grad_norm_`, one norm for the whole model, not one per tensor). Returns the
/// norm before clipping.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: Option<f64>,
) -> Result<f64> {
    let mut sq = GradSquares { grads, total: None };
    module.visit(&mut sq);
    let norm = match sq.total {
        Some(t) => score_core::tensor::to_vec_f64(t)?[0].sqrt(),
        None => 0.0,
    };
    if let Some(m) = max_norm
        && norm > m
    {
        module.visit(&mut GradScale {
            grads,
            scale: m / (norm + 1e-6),
        });
    }
    Ok(norm)
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

/// What a scorelab training checkpoint records in its configuration
/// ([`CheckpointMeta::config`]), typed: the training settings, what the producing command
/// recorded (`extra`: the network description, and e.g. `cli` or `text`), and the
/// objective. `E` is the reader's view of `extra`: [`crate::pipeline::ModelSpec`] for
/// the network, a struct with the fields a command needs, or JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunConfig<E = serde_json::Value> {
    /// How it was trained.
    pub train: TrainConfig,
    /// What the producing command recorded.
    pub extra: E,
    /// The objective's description (`Objective::describe`).
    #[serde(default)]
    pub objective: serde_json::Value,
}

pub use crate::fit::trim_log;

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
    train_with(net, data, cfg, &Denoising, extra, out, resume)
}

/// [`train`] with any [`Objective`] (ScoreAug, non-leaky augmentation, …): the same
/// loop, checkpoints, EMA, resume and guards; only the regression pairs differ.
pub fn train_with<const D: usize, N, T>(
    net: N,
    data: &T,
    cfg: &TrainConfig,
    objective: &dyn Objective<D>,
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
    check_devices(cfg, out)?;
    let device = net
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| ScoreError::invalid("net", "the network has no parameters"))?;
    let (learner, start) = match resume {
        Some(ck) => (Learner::restore(net, cfg, ck)?, ck.meta.step),
        None => (Learner::new(net, cfg), 0),
    };
    if start >= cfg.steps {
        return Ok(TrainResult {
            net: learner.net,
            ema: learner.ema,
            step: start,
            last_loss: f64::NAN,
            seconds: 0.0,
        });
    }
    if let Some(dir) = out.checkpoint.as_ref().and_then(|p| p.parent()) {
        score_core::fs::clean_stale_temporaries(dir)?;
    }
    let schedule = Schedule {
        start,
        end: out
            .stop_after
            .map_or(cfg.steps, |k| (start + k).min(cfg.steps)),
        total: cfg.steps,
        log_every: cfg.log_every,
        checkpoint_every: cfg.checkpoint_every,
        saved: resume.map(|ck| ck.meta.step),
    };
    let mut run = DsmRun {
        config: serde_json::json!({ "train": cfg, "extra": extra, "objective": objective.describe() }),
        learner,
        data,
        cfg,
        objective,
        device,
        out,
        guard: DivergenceGuard::default(),
        window: Window::default(),
        last_loss: f64::NAN,
        rate: f64::NAN,
    };
    let mut log = out.log.as_deref().map(JsonLinesLog::new);
    let mut bar = out.progress.then(|| ProgressBar::new("train"));
    let mut observers: Vec<&mut dyn Observer> = Vec::new();
    observers.extend(log.as_mut().map(|o| o as &mut dyn Observer));
    observers.extend(bar.as_mut().map(|o| o as &mut dyn Observer));
    let fitted = fit(&mut run, &schedule, &mut observers)?;
    Ok(TrainResult {
        net: run.learner.net,
        ema: run.learner.ema,
        step: schedule.end,
        last_loss: run.last_loss,
        seconds: fitted.seconds,
    })
}

/// The micro-batches must be shared evenly by the network's device and the replicas.
fn check_devices(cfg: &TrainConfig, out: &TrainOutput) -> Result<()> {
    let devices = 1 + out.replicas.len();
    if cfg.grad_accumulation.is_multiple_of(devices) {
        return Ok(());
    }
    Err(ScoreError::invalid(
        "grad_accumulation",
        format!(
            "{} micro-batches cannot be shared by {devices} devices: give a multiple of {devices}",
            cfg.grad_accumulation
        ),
    ))
}

/// Sums over the steps since the last log point.
#[derive(Debug, Default)]
struct Window {
    loss: f64,
    grad_norm: f64,
    lr: f64,
    n: usize,
}

/// Denoising score matching (or any [`Objective`]) of one network as a [`TrainStep`].
struct DsmRun<'a, const D: usize, N, T: ?Sized> {
    learner: Learner<N>,
    data: &'a T,
    cfg: &'a TrainConfig,
    objective: &'a dyn Objective<D>,
    device: Device,
    out: &'a TrainOutput,
    config: serde_json::Value,
    guard: DivergenceGuard,
    window: Window,
    last_loss: f64,
    rate: f64,
}

impl<const D: usize, N, T> DsmRun<'_, D, N, T>
where
    N: ScoreNetwork<D>,
    T: TrainData<D> + ?Sized,
{
    /// The loss failure at `step`: diverged when the guard has a reference and the
    /// loss is finite, non-finite otherwise (the loop names the last checkpoint).
    fn loss_failure(&self, step: usize, loss: f64) -> ScoreError {
        match self.guard.reference() {
            Some(reference) if loss.is_finite() => ScoreError::Diverged {
                step,
                loss,
                reference,
                factor: self.guard.factor,
                patience: self.guard.patience,
                checkpoint_step: None,
            },
            _ => ScoreError::NonFiniteLoss {
                step,
                loss,
                checkpoint_step: None,
            },
        }
    }
}

impl<const D: usize, N, T> TrainStep for DsmRun<'_, D, N, T>
where
    N: ScoreNetwork<D>,
    T: TrainData<D> + ?Sized,
{
    fn step(&mut self, step: usize) -> Result<()> {
        let (idx, mut rng) = self.cfg.batch_indices(step, self.data.len());
        let (x0, cond) = self.data.batch(&idx, &self.device)?;
        let (value, grads) = objective_gradients(
            &self.learner.net,
            self.cfg,
            self.objective,
            x0,
            cond,
            &mut rng,
            &self.out.replicas,
        )?;
        if !value.is_finite() || self.guard.observe(value) {
            return Err(self.loss_failure(step, value));
        }
        self.window.lr = self.cfg.lr_at(step);
        let grad_norm = self.learner.step(self.cfg, step, grads)?;
        self.window.grad_norm += grad_norm;
        self.window.loss += value;
        self.window.n += 1;
        Ok(())
    }

    fn log_record(&mut self, done: usize, clock: &Clock) -> Result<serde_json::Value> {
        let w = std::mem::take(&mut self.window);
        self.last_loss = w.loss / w.n as f64;
        let secs = clock.elapsed_s();
        self.rate = clock.rate(done);
        let grad_norm = w.grad_norm / w.n as f64;
        Ok(
            serde_json::json!({"step": done, "loss": self.last_loss, "grad_norm": grad_norm, "lr": w.lr, "steps_per_s": self.rate, "elapsed_s": secs}),
        )
    }

    fn status(&self) -> String {
        if self.rate.is_nan() {
            return String::new();
        }
        format!("loss {:.4}  {:.2} steps/s", self.last_loss, self.rate)
    }

    fn save(&mut self, done: usize) -> Result<bool> {
        let Some(path) = &self.out.checkpoint else {
            return Ok(false);
        };
        let meta = CheckpointMeta {
            format: FORMAT_VERSION,
            step: done,
            seed: self.cfg.seed,
            config: self.config.clone(),
            param_ids: Default::default(),
            stats: [("loss".to_string(), self.last_loss)].into(),
        };
        let bytes = self.learner.checkpoint_bytes(&meta)?;
        score_core::fs::write_atomic(path, &bytes)?;
        if self.out.keep_checkpoints {
            score_core::fs::write_atomic(&kept_checkpoint_path(path, done), &bytes)?;
        }
        Ok(true)
    }
}
