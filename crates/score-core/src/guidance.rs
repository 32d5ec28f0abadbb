//! Classifier-free guidance (Ho & Salimans 2022) as a [`Denoiser`] wrapper, so that every
//! sampler gets it unchanged:
//!
//! D_w(x; σ, c) = D(x; σ, ∅) + w·(D(x; σ, c) − D(x; σ, ∅)),
//!
//! with the guidance scale w in the convention of EDM2 and diffusers: w = 1 is the plain
//! conditional denoiser, w = 0 the unconditional one, w > 1 guides. The unconditional
//! input ∅ is the conditioning with its class labels, context and token mask set to
//! zero, which is what label (caption) dropout trains the network to read as "no
//! condition" (EDM's `label_dropout` zeroes the one-hot vector the same way). The augmentation input is
//! kept. Two network evaluations per call; a caller counting NFE counts calls of the
//! wrapper.

use burn::tensor::Tensor;

use crate::denoiser::{Conditioning, Denoiser};

/// A denoiser with classifier-free guidance of scale `scale`.
#[derive(Debug, Clone)]
pub struct Guided<M> {
    /// The conditional denoiser (trained with label or caption dropout).
    pub den: M,
    /// The guidance scale w (1 = no guidance).
    pub scale: f64,
}

impl<M> Guided<M> {
    /// Guide `den` with scale `scale`.
    pub fn new(den: M, scale: f64) -> Self {
        Self { den, scale }
    }
}

/// The conditioning with labels, context and token mask replaced by zeros (the "no
/// condition" input; a zero token mask makes cross-attention add nothing).
pub fn unconditional(cond: &Conditioning) -> Conditioning {
    Conditioning {
        class_labels: cond.class_labels.as_ref().map(|t| t.zeros_like()),
        augment: cond.augment.clone(),
        context: cond.context.as_ref().map(|t| t.zeros_like()),
        tokens: cond.tokens.clone(),
        token_mask: cond.token_mask.as_ref().map(|t| t.zeros_like()),
    }
}

impl<const D: usize, M: Denoiser<D>> Denoiser<D> for Guided<M> {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D> {
        let Some(c) = cond else {
            return self.den.denoise(x, sigma, None);
        };
        let d_cond = self.den.denoise(x.clone(), sigma.clone(), Some(c));
        if self.scale == 1.0 {
            return d_cond;
        }
        let d_uncond = self.den.denoise(x, sigma, Some(&unconditional(c)));
        d_uncond.clone() + (d_cond - d_uncond).mul_scalar(self.scale)
    }
}
