//! [`ImageNet`]: any image network the toolkit runs, behind one type: the crate's own
//! [`UNet`], EDM's [`EdmUNet`] (imported or configured by EDM's arguments) or
//! diffusers' `UNet2DModel` ([`DiffusersUNet`]). Every
//! command that takes an image checkpoint works through this type; the checkpoint's
//! `extra.kind` says which one it holds, and each variant keeps its own parameter
//! names (a checkpoint stores the inner network, never the variant).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::diffusers::DiffusersUNet;
use crate::edm::EdmUNet;
use crate::precond::ScoreNetwork;
use crate::unet::UNet;
use score_core::denoiser::Conditioning;

/// An image network: the crate's UNet or one of EDM's.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one per command
pub enum ImageNet {
    /// The crate's UNet (`scorelab train`).
    Scorelab(UNet),
    /// EDM's SongUNet or DhariwalUNet.
    Edm(EdmUNet),
    /// diffusers' UNet2DModel.
    Diffusers(DiffusersUNet),
}

impl ImageNet {
    /// The class-label dimension (0: unconditional).
    pub fn label_dim(&self) -> usize {
        match self {
            Self::Scorelab(n) => n.label_dim(),
            Self::Edm(n) => n.label_dim(),
            Self::Diffusers(n) => n.label_dim(),
        }
    }

    /// The widest level's channels (for memory estimates).
    pub fn widest_channels(&self) -> usize {
        match self {
            Self::Scorelab(n) => n.widest_channels(),
            Self::Edm(n) => n.widest_channels(),
            Self::Diffusers(n) => n.widest_channels(),
        }
    }
}

impl ScoreNetwork<4> for ImageNet {
    fn forward(
        &self,
        x_in: Tensor<4>,
        c_noise: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<4> {
        match self {
            Self::Scorelab(n) => ScoreNetwork::forward(n, x_in, c_noise, cond),
            Self::Edm(n) => ScoreNetwork::forward(n, x_in, c_noise, cond),
            Self::Diffusers(n) => ScoreNetwork::forward(n, x_in, c_noise, cond),
        }
    }
}
