//! What `train` records of its command line in a checkpoint (`config.extra.cli`): the
//! run record that `--resume` rebuilds the run from and `config.toml` is written from.

/// What `train` records of its command line in the checkpoint (`config.extra.cli`), so
/// that `--resume` can rebuild the run and refuse changes that would break it.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(crate) struct RunRecord {
    pub(crate) data: String,
    /// `--data-dir` of a run on Fashion-MNIST's IDX files elsewhere.
    #[serde(default)]
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// A digest of the data's values ([`fingerprint`]), absent in older runs.
    #[serde(default)]
    pub(crate) fingerprint: Option<String>,
    /// EDM's dataset x-flip: every image also mirrored left-right.
    #[serde(default)]
    pub(crate) xflip: bool,
    /// `--resolution`: images resized and centre-cropped to N × N.
    #[serde(default)]
    pub(crate) resolution: Option<usize>,
    pub(crate) subset: usize,
    pub(crate) channels: usize,
    #[serde(default = "no_cond")]
    pub(crate) cond: String,
    /// The augmentation objective, absent for plain denoising.
    #[serde(default)]
    pub(crate) augment: Option<scoreaug::Augment>,
    /// The image network (`scorelab`, or EDM's `ddpmpp`, `ncsnpp`, `adm`).
    #[serde(default = "scorelab_arch")]
    pub(crate) arch: String,
    /// Residual blocks per level of an EDM network.
    #[serde(default = "two")]
    pub(crate) blocks: usize,
    /// The network's levels follow the resolution ([`pipeline::unet_config_for`],
    /// [`pipeline::edm_layout_for`]); false in runs begun before they did.
    #[serde(default)]
    pub(crate) layout_by_resolution: bool,
}

pub(crate) fn scorelab_arch() -> String {
    "scorelab".into()
}

fn two() -> usize {
    2
}

/// The part of a checkpoint's `config.extra` that `train` writes of its command line.
#[derive(serde::Deserialize)]
pub(crate) struct CliExtra {
    pub(crate) cli: RunRecord,
}

/// The conditioning of runs recorded before it was: none.
pub(crate) fn no_cond() -> String {
    "none".into()
}
