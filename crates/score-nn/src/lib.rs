//! # score-nn: networks
//!
//! Networks as burn `Module`s with `Config`s, and the EDM preconditioning that turns a
//! raw network F into a [`Denoiser`](score_core::denoiser::Denoiser).
//!
//! - [`mlp::MlpDenoiser`]: for low-dimensional data, with a Fourier σ embedding.
//! - [`norm::group_norm`], [`norm::group_norm_silu`]: GroupNorm (+ SiLU) as one operation of the kernels crate on burn-flex.
//! - [`unet::UNet`]: a DDPM++/SongUNet-style UNet (Song et al. 2021; EDM's
//!   `SongUNet`): residual blocks with GroupNorm and SiLU, self-attention at chosen
//!   resolutions, skip connections, dropout, and three optional conditioning inputs
//!   added to the noise embedding (class label, augmentation vector zero-initialised as
//!   EDM's DhariwalUNet (ADM) initialises `map_augment`; EDM's SongUNet uses
//!   Xavier-uniform there, as `score_nn::edm` does), and a context vector).
//! - [`embedding`]: positional and Fourier noise embeddings.
//! - [`precond::Preconditioned`]: EDM's preconditioning (Eq. 7) around any network, and
//!   the loss (Eq. 8).
//! - [`edm`]: EDM's `SongUNet` (DDPM++, NCSN++) and `DhariwalUNet` (ADM), configured
//!   by EDM's keyword arguments, with PyTorch's parameter names.
//! - [`diffusers`]: diffusers' `UNet2DModel`, with diffusers' parameter names.
//! - [`import`]: PyTorch state dicts (safetensors, any float dtype) into modules, every
//!   key and shape checked.
//! - [`network::ImageNet`]: any of the image networks behind one type.
//! - [`text`]: the MiniLM sentence encoder (all-MiniLM-L6-v2) for text conditioning,
//!   loaded from the weights `cargo xtask minilm-setup` converts.

pub mod diffusers;
pub mod edm;
pub mod embedding;
pub mod import;
pub mod mlp;
pub mod network;
pub mod norm;
pub mod precond;
pub mod text;
pub mod unet;

pub use precond::{Preconditioned, ScoreNetwork, denoising_loss, regression_loss};
pub use text::TextEncoder;
pub use unet::{UNet, UNetConfig};
