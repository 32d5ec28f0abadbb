//! What a training run records of its settings in its checkpoint (`config.extra.cli`):
//! the run record that resuming rebuilds the run from and `config.toml` is written from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A training run's data, network and augmentation, as recorded in its checkpoint
/// (`config.extra.cli`) so that a resume can rebuild the run and refuse changes that
/// would break it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunRecord {
    /// The data: a data set name, a `.npy` file or an image folder (absolute).
    pub data: String,
    /// The folder of Fashion-MNIST's IDX files, where not the default one.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// A digest of the data's values (absent in older runs).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// EDM's dataset x-flip: every image also mirrored left-right.
    #[serde(default)]
    pub xflip: bool,
    /// Images resized and centre-cropped to N × N.
    #[serde(default)]
    pub resolution: Option<usize>,
    /// A class-balanced subset of this many images (0: all).
    pub subset: usize,
    /// The network's base width.
    pub channels: usize,
    /// `none` or `class`.
    #[serde(default = "no_cond")]
    pub cond: String,
    /// The augmentation objective, absent for plain denoising.
    #[serde(default)]
    pub augment: Option<scoreaug::Augment>,
    /// The image network (`scorelab`, or EDM's `ddpmpp`, `ncsnpp`, `adm`).
    #[serde(default = "scorelab_arch")]
    pub arch: String,
    /// Residual blocks per level of an EDM network.
    #[serde(default = "two")]
    pub blocks: usize,
    /// The network's levels follow the resolution (`pipeline::unet_config_for`,
    /// `pipeline::edm_layout_for`); false in runs begun before they did.
    #[serde(default)]
    pub layout_by_resolution: bool,
}

/// The network of runs recorded before the choice existed.
pub fn scorelab_arch() -> String {
    "scorelab".into()
}

fn two() -> usize {
    2
}

/// The conditioning of runs recorded before it was: none.
pub fn no_cond() -> String {
    "none".into()
}

/// The part of a checkpoint's `config.extra` a training run writes of its settings.
#[derive(Debug, Clone, Deserialize)]
pub struct CliExtra {
    /// The run record.
    pub cli: RunRecord,
}
