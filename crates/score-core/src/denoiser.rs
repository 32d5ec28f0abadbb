//! The `Denoiser` trait: the one seam between score models and samplers.
//!
//! Following EDM (Karras et al. 2022, Eq. 3) and k-diffusion, a score model is a
//! denoiser D(x; σ) ≈ E[x₀ | x_σ = x] for x_σ = x₀ + σ·n. The score follows by
//! Tweedie's formula, s(x; σ) = (D(x; σ) − x)/σ², and the probability-flow ODE is
//! dx/dσ = (x − D(x; σ))/σ (EDM Eq. 3 with σ(t) = t).

use burn::tensor::Tensor;

use crate::tensor::per_sample;

/// Optional conditioning inputs: vectors `[B, dim]` added to a network's noise embedding
/// (EDM's `map_label` and `map_augment`; a pooled text embedding as `context`), and a
/// token sequence read by cross-attention (a text encoder's states, as Stable
/// Diffusion's UNet). A row whose labels, context and token mask are all zero is "no
/// condition": what label/caption dropout trains and classifier-free guidance asks for.
#[derive(Debug, Clone, Default)]
pub struct Conditioning {
    /// Class labels, one-hot (or soft) `[B, num_classes]`.
    pub class_labels: Option<Tensor<2>>,
    /// Augmentation parameters `[B, augment_dim]` (ScoreAug / non-leaky augmentation).
    pub augment: Option<Tensor<2>>,
    /// A context vector `[B, context_dim]`, e.g. a text embedding.
    pub context: Option<Tensor<2>>,
    /// A token sequence `[B, L, token_dim]` for cross-attention.
    pub tokens: Option<Tensor<3>>,
    /// Which tokens are real, `[B, L]`: 1 for a token, 0 for padding; a row of zeros
    /// makes cross-attention add nothing.
    pub token_mask: Option<Tensor<2>>,
}

impl Conditioning {
    /// The rows `start..start + len` of every input (for micro-batches).
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        let cut = |t: &Option<Tensor<2>>| t.clone().map(|t| t.narrow(0, start, len));
        Self {
            class_labels: cut(&self.class_labels),
            augment: cut(&self.augment),
            context: cut(&self.context),
            tokens: self.tokens.clone().map(|t| t.narrow(0, start, len)),
            token_mask: cut(&self.token_mask),
        }
    }

    /// Every input moved to `device` (for a replica on another device).
    pub fn to_device(self, device: &burn::tensor::Device) -> Self {
        let mv = |t: Option<Tensor<2>>| t.map(|t| t.to_device(device));
        Self {
            class_labels: mv(self.class_labels),
            augment: mv(self.augment),
            context: mv(self.context),
            tokens: self.tokens.map(|t| t.to_device(device)),
            token_mask: mv(self.token_mask),
        }
    }

    /// Only class labels.
    pub fn labels(class_labels: Tensor<2>) -> Self {
        Self {
            class_labels: Some(class_labels),
            ..Self::default()
        }
    }
}

/// A denoiser on batches of rank-`D` tensors (`[B, d]` for vectors, `[B, C, H, W]` for
/// images), with one σ per sample.
pub trait Denoiser<const D: usize> {
    /// D(x; σ): the estimate of E[x₀ | x_σ = x]. `sigma` is `[B]`, all entries > 0.
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D>;

    /// The score s(x; σ) = (D(x; σ) − x)/σ².
    fn score(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D> {
        let d = self.denoise(x.clone(), sigma.clone(), cond);
        (d - x) / per_sample::<D>(sigma.powi_scalar(2))
    }

    /// The probability-flow ODE derivative dx/dσ = (x − D(x; σ))/σ.
    fn ode_derivative(
        &self,
        x: Tensor<D>,
        sigma: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<D> {
        let d = self.denoise(x.clone(), sigma.clone(), cond);
        (x - d) / per_sample::<D>(sigma)
    }
}

impl<const D: usize, T: Denoiser<D> + ?Sized> Denoiser<D> for &T {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D> {
        (**self).denoise(x, sigma, cond)
    }
}

impl<const D: usize, T: Denoiser<D> + ?Sized> Denoiser<D> for Box<T> {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D> {
        (**self).denoise(x, sigma, cond)
    }
}
