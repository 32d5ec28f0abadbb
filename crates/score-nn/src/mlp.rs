//! An MLP denoiser network for low-dimensional data (2-D toys, Gaussian mixtures).
//!
//! F(x_in; c_noise) = W_out·h_L, with h_0 = W_in·x_in + W_emb·silu(M(fourier(c_noise)) +
//! cond), and residual SiLU blocks h_{l+1} = h_l + W_l·silu(h_l + emb_l). Paired with
//! EDM preconditioning it gives a [`Denoiser`](score_core::denoiser::Denoiser) on `[B, d]`.

use crate::norm::silu;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::embedding::{ConditioningMaps, FourierEmbedding};
use super::precond::ScoreNetwork;
use score_core::denoiser::Conditioning;

/// Configuration of [`MlpDenoiser`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Data dimension d.
    pub dim: usize,
    /// Hidden width.
    #[config(default = 128)]
    pub hidden: usize,
    /// Number of residual blocks.
    #[config(default = 3)]
    pub blocks: usize,
    /// Number of Fourier frequencies of the σ embedding.
    #[config(default = 32)]
    pub fourier_features: usize,
    /// Scale of the Fourier frequencies (c_noise = ¼ ln σ lies in about [−1.6, 1.1]).
    #[config(default = 1.0)]
    pub fourier_scale: f64,
    /// Class-label dimension (0 = unconditional).
    #[config(default = 0)]
    pub label_dim: usize,
    /// Seed of the Fourier frequencies.
    #[config(default = 0)]
    pub seed: u64,
}

/// A residual MLP block.
#[derive(Module, Debug)]
pub struct MlpBlock {
    norm: LayerNorm,
    emb: Linear,
    fc1: Linear,
    fc2: Linear,
}

/// The MLP network F.
#[derive(Module, Debug)]
pub struct MlpDenoiser {
    fourier: FourierEmbedding,
    map: Linear,
    cond: ConditioningMaps,
    input: Linear,
    blocks: Vec<MlpBlock>,
    out_norm: LayerNorm,
    output: Linear,
}

impl MlpConfig {
    /// Build the network on `device`.
    pub fn init(&self, device: &Device) -> MlpDenoiser {
        let h = self.hidden;
        let e = 2 * self.fourier_features;
        MlpDenoiser {
            fourier: FourierEmbedding::new(
                self.fourier_features,
                self.fourier_scale,
                self.seed,
                device,
            ),
            map: LinearConfig::new(e, h).init(device),
            cond: ConditioningMaps::new(self.label_dim, 0, 0, h, device),
            input: LinearConfig::new(self.dim, h).init(device),
            blocks: (0..self.blocks)
                .map(|_| MlpBlock {
                    norm: LayerNormConfig::new(h).init(device),
                    emb: LinearConfig::new(h, h).init(device),
                    fc1: LinearConfig::new(h, 2 * h).init(device),
                    fc2: LinearConfig::new(2 * h, h).init(device),
                })
                .collect(),
            out_norm: LayerNormConfig::new(h).init(device),
            output: LinearConfig::new(h, self.dim).init(device),
        }
    }
}

impl ScoreNetwork<2> for MlpDenoiser {
    fn forward(
        &self,
        x_in: Tensor<2>,
        c_noise: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<2> {
        let mut emb = self.map.forward(self.fourier.forward(c_noise));
        if let Some(c) = self.cond.forward(cond) {
            emb = emb + c;
        }
        let emb = silu(emb);
        let mut h = self.input.forward(x_in);
        for b in &self.blocks {
            let z = b.norm.forward(h.clone()) + b.emb.forward(emb.clone());
            h = h + b.fc2.forward(silu(b.fc1.forward(silu(z))));
        }
        self.output.forward(silu(self.out_norm.forward(h)))
    }
}
