//! A latent space for staff-system images: a small convolutional autoencoder,
//! KL-regularised as Stable Diffusion's (Rombach et al. 2022, the `AutoencoderKL` of
//! the paper's SD 2), trained on the rendered corpus and frozen before the diffusion
//! model is trained in its latent space.
//!
//! - **Shape.** The encoder maps a grayscale image `[1, H, W]` in [−1, 1] to the mean
//!   and log-variance of a diagonal Gaussian over `[c, H/f, W/f]` (f = 2^(levels − 1),
//!   4 with the default three widths); the decoder maps a latent back. Every level is a
//!   3×3 convolution (stride 2 going down; nearest ×2 then a 3×3 convolution going up)
//!   and a residual block (GroupNorm, SiLU, 3×3 convolution, twice) below full
//!   resolution, as SD's `Encoder`/`Decoder` with one block per level and no attention.
//! - **Loss.** SD's reconstruction term without its perceptual and adversarial parts:
//!   the L1 error summed over pixels, plus `kl_weight` (SD: 1e-6) times the KL
//!   divergence to N(0, I) summed over latent elements, both averaged over the batch.
//! - **Scale.** As SD's `scale_factor` (0.18215): the diffusion model sees latents
//!   multiplied by [`LatentRecord::scale`], one over the standard deviation of the
//!   posterior means over the training systems, so that they have unit variance.

use score_core::burn;
use score_core::burn::config::Config;
use score_core::burn::module::Module;
use score_core::burn::nn::conv::{Conv2d, Conv2dConfig};
use score_core::burn::nn::{GroupNorm, PaddingConfig2d};
use score_core::burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use score_nn::norm::{group_norm_layer, group_norm_silu};

/// Configuration of [`Autoencoder`].
#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderConfig {
    /// Latent channels c.
    #[config(default = 4)]
    pub latent_channels: usize,
    /// Widths per level, full resolution first; each further level halves the side.
    #[config(default = "vec![24, 48, 64]")]
    pub widths: Vec<usize>,
    /// GroupNorm groups (at most the width).
    #[config(default = 8)]
    pub groups: usize,
}

impl AutoencoderConfig {
    /// The downsampling factor f = 2^(levels − 1).
    pub fn factor(&self) -> usize {
        1 << self.widths.len().saturating_sub(1)
    }

    /// Build the network on `device`.
    pub fn init(&self, device: &Device) -> Autoencoder {
        let w = &self.widths;
        let l = w.len();
        let top = w[l - 1];
        let g = self.groups;
        Autoencoder {
            enc_in: conv(1, w[0], 1, device),
            enc_down: (0..l - 1)
                .map(|k| conv(w[k], w[k + 1], 2, device))
                .collect(),
            enc_res: (1..l).map(|k| Res::new(w[k], g, device)).collect(),
            enc_norm: group_norm_layer(g, top, device),
            enc_out: conv(top, 2 * self.latent_channels, 1, device),
            dec_in: conv(self.latent_channels, top, 1, device),
            dec_res: (1..l).map(|k| Res::new(w[k], g, device)).collect(),
            dec_up: (0..l - 1)
                .map(|k| conv(w[k + 1], w[k], 1, device))
                .collect(),
            dec_norm: group_norm_layer(g, w[0], device),
            dec_out: conv(w[0], 1, 1, device),
        }
    }
}

fn conv(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// A residual block: x + conv(SiLU(GN(conv(SiLU(GN(x)))))).
#[derive(Module, Debug)]
pub struct Res {
    n0: GroupNorm,
    c0: Conv2d,
    n1: GroupNorm,
    c1: Conv2d,
}

impl Res {
    fn new(ch: usize, groups: usize, device: &Device) -> Self {
        Self {
            n0: group_norm_layer(groups, ch, device),
            c0: conv(ch, ch, 1, device),
            n1: group_norm_layer(groups, ch, device),
            c1: conv(ch, ch, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = scorelab_kernels::conv2d_layer(&self.c0, group_norm_silu(&self.n0, x.clone()));
        x + scorelab_kernels::conv2d_layer(&self.c1, group_norm_silu(&self.n1, h))
    }
}

/// The autoencoder (see the module docs).
#[derive(Module, Debug)]
pub struct Autoencoder {
    enc_in: Conv2d,
    enc_down: Vec<Conv2d>,
    enc_res: Vec<Res>,
    enc_norm: GroupNorm,
    enc_out: Conv2d,
    dec_in: Conv2d,
    dec_res: Vec<Res>,
    dec_up: Vec<Conv2d>,
    dec_norm: GroupNorm,
    dec_out: Conv2d,
}

impl Autoencoder {
    /// The posterior's mean and log-variance, each `[n, c, H/f, W/f]`, of images
    /// `[n, 1, H, W]` (H and W multiples of f).
    pub fn encode(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut h = scorelab_kernels::conv2d_layer(&self.enc_in, x);
        for (down, res) in self.enc_down.iter().zip(&self.enc_res) {
            h = res.forward(scorelab_kernels::conv2d_layer(down, h));
        }
        let out = scorelab_kernels::conv2d_layer(&self.enc_out, group_norm_silu(&self.enc_norm, h));
        let c = out.dims()[1] / 2;
        let mean = out.clone().narrow(1, 0, c);
        // SD clamps the log-variance to [−30, 20].
        let logvar = out.narrow(1, c, c).clamp(-30.0, 20.0);
        (mean, logvar)
    }

    /// Images `[n, 1, H, W]` from latents `[n, c, H/f, W/f]`.
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let mut h = scorelab_kernels::conv2d_layer(&self.dec_in, z);
        let l = self.dec_up.len();
        h = self.dec_res[l - 1].forward(h);
        for k in (0..l).rev() {
            h = scorelab_kernels::conv2d_layer(&self.dec_up[k], scorelab_kernels::upsample2x(h));
            if k > 0 {
                h = self.dec_res[k - 1].forward(h);
            }
        }
        scorelab_kernels::conv2d_layer(&self.dec_out, group_norm_silu(&self.dec_norm, h))
    }

    /// The training loss of a batch `x` `[n, 1, H, W]` with standard normal `eps` of
    /// the latent's shape: (total, L1 summed over pixels, KL summed over latent
    /// elements), each averaged over the batch.
    pub fn loss(&self, x: Tensor<4>, eps: Tensor<4>, kl_weight: f64) -> AeLoss {
        let n = x.dims()[0] as f64;
        let (mean, logvar) = self.encode(x.clone());
        let z = mean.clone() + (logvar.clone() * 0.5).exp() * eps;
        let recon = self.decode(z);
        let l1 = (recon - x).abs().sum() / n;
        let kl = ((mean.powi_scalar(2) + logvar.clone().exp() - logvar - 1.0).sum() * 0.5) / n;
        AeLoss {
            total: l1.clone() + kl.clone() * kl_weight,
            l1,
            kl,
        }
    }
}

/// The terms of [`Autoencoder::loss`].
pub struct AeLoss {
    /// `l1 + kl_weight · kl`.
    pub total: Tensor<1>,
    /// L1 reconstruction error, summed over pixels, averaged over the batch.
    pub l1: Tensor<1>,
    /// KL divergence to N(0, I), summed over latent elements, averaged over the batch.
    pub kl: Tensor<1>,
}

/// What a latent text-to-score model records about its autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentRecord {
    /// The autoencoder checkpoint's file name, looked up beside the model's checkpoint.
    pub file: String,
    /// Its SHA-256, checked on load.
    pub sha256: String,
    /// The network.
    pub config: AutoencoderConfig,
    /// Latents are multiplied by this before diffusion and divided after sampling.
    pub scale: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use score_core::tensor::{randn, stream_rng};

    #[test]
    fn shapes_follow_the_factor() {
        let dev = Device::flex();
        let cfg = AutoencoderConfig::new();
        assert_eq!(cfg.factor(), 4);
        let ae = cfg.init(&dev);
        let x = randn([2, 1, 16, 24], &mut stream_rng(0, 0, 0), &dev);
        let (m, lv) = ae.encode(x);
        assert_eq!(m.dims(), [2, 4, 4, 6]);
        assert_eq!(lv.dims(), [2, 4, 4, 6]);
        assert_eq!(ae.decode(m).dims(), [2, 1, 16, 24]);
    }
}
