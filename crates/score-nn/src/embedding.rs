//! Noise-level embeddings and the conditioning maps.

use burn::module::Initializer;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use score_core::denoiser::Conditioning;

/// Sinusoidal positional embedding of the noise label (DDPM++; EDM's
/// `PositionalEmbedding` with max_positions = 10 000): `[B] → [B, channels]`, cosines
/// then sines.
pub fn positional_embedding(c_noise: Tensor<1>, channels: usize) -> Tensor<2> {
    let half = channels / 2;
    let device = c_noise.device();
    let freqs: Vec<f32> = (0..half)
        .map(|i| (1.0f64 / 10_000f64.powf(i as f64 / half as f64)) as f32)
        .collect();
    let freqs = score_core::tensor::from_f32(freqs, [1, half], &device);
    let b = c_noise.dims()[0];
    let arg = c_noise.reshape([b, 1]) * freqs;
    Tensor::cat(vec![arg.clone().cos(), arg.sin()], 1)
}

/// Random Fourier features of the noise label (NCSN++; Tancik et al. 2020):
/// `[B] → [B, 2F]` with fixed frequencies f ~ N(0, scale²), stored (not trained) so
/// that a checkpoint reproduces the network exactly.
#[derive(Module, Debug)]
pub struct FourierEmbedding {
    /// Frequencies `[F]`, not trained.
    pub freqs: Param<Tensor<1>>,
}

impl FourierEmbedding {
    /// `features` frequencies of scale `scale` drawn from `seed`.
    pub fn new(features: usize, scale: f64, seed: u64, device: &Device) -> Self {
        let mut rng = score_core::tensor::stream_rng(seed, 0x4655_5249, 0);
        let f = score_core::tensor::randn([features], &mut rng, device).mul_scalar(scale);
        Self {
            freqs: Param::from_tensor(f).set_require_grad(false),
        }
    }

    /// The embedding `[B, 2F]`.
    pub fn forward(&self, c_noise: Tensor<1>) -> Tensor<2> {
        let f = self.freqs.val();
        let n = f.dims()[0];
        let b = c_noise.dims()[0];
        let arg =
            c_noise.reshape([b, 1]) * f.reshape([1, n]).mul_scalar(2.0 * std::f64::consts::PI);
        Tensor::cat(vec![arg.clone().cos(), arg.sin()], 1)
    }
}

/// The three optional conditioning maps of EDM's networks: bias-free linear layers from
/// a class label, an augmentation vector and a context vector into the embedding.
#[derive(Module, Debug)]
pub struct ConditioningMaps {
    /// `map_label`: one-hot labels → embedding.
    pub label: Option<Linear>,
    /// `map_augment`: augmentation parameters → embedding, zero-initialised so that an
    /// unaugmented model is unchanged by it at the start (EDM's DhariwalUNet does the
    /// same; its SongUNet initialises `map_augment` Xavier-uniform).
    pub augment: Option<Linear>,
    /// A context (e.g. text) vector → embedding.
    pub context: Option<Linear>,
}

impl ConditioningMaps {
    /// Maps of the given input sizes (0 = absent) into `emb` channels.
    pub fn new(
        label_dim: usize,
        augment_dim: usize,
        context_dim: usize,
        emb: usize,
        device: &Device,
    ) -> Self {
        let map = |d: usize, init: Initializer| {
            (d > 0).then(|| {
                LinearConfig::new(d, emb)
                    .with_bias(false)
                    .with_initializer(init)
                    .init(device)
            })
        };
        let kaiming = Initializer::KaimingUniform {
            gain: 1.0,
            fan_out_only: false,
        };
        Self {
            label: map(label_dim, kaiming.clone()),
            augment: map(augment_dim, Initializer::Zeros),
            context: map(context_dim, kaiming),
        }
    }

    /// The sum of the present maps applied to the present inputs, or `None`.
    pub fn forward(&self, cond: Option<&Conditioning>) -> Option<Tensor<2>> {
        let cond = cond?;
        let parts = [
            (self.label.as_ref(), cond.class_labels.as_ref()),
            (self.augment.as_ref(), cond.augment.as_ref()),
            (self.context.as_ref(), cond.context.as_ref()),
        ];
        parts
            .into_iter()
            .filter_map(|(m, x)| Some(m?.forward(x?.clone())))
            .reduce(|a, b| a + b)
    }
}
