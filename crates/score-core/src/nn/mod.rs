//! Networks as burn `Module`s with `Config`s, and the EDM preconditioning that turns a
//! raw network F into a [`Denoiser`](crate::denoiser::Denoiser).
//!
//! - [`mlp::MlpDenoiser`]: for low-dimensional data, with a Fourier σ embedding.
//! - [`norm::group_norm`]: GroupNorm as one `batch_norm_train` operation.
//! - [`unet::UNet`]: a DDPM++/SongUNet-style UNet (Song et al. 2021; EDM's
//!   `SongUNet`): residual blocks with GroupNorm and SiLU, self-attention at chosen
//!   resolutions, skip connections, dropout, and three optional conditioning inputs
//!   added to the noise embedding (class label, augmentation vector zero-initialised as
//!   EDM's `map_augment`, and a context vector).

pub mod embedding;
pub mod mlp;
pub mod norm;
pub mod precond;
pub mod unet;

pub use precond::{Preconditioned, ScoreNetwork, denoising_loss, regression_loss};
