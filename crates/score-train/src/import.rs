//! Bring your own model: EDM networks into scorelab checkpoints that every command
//! taking `--checkpoint` reads.
//!
//! Two sources: EDM's own snapshots (`network-snapshot-*.pkl`, read by
//! [`crate::edm_pickle`] without running Python) and a PyTorch state dict in safetensors
//! (the keys of `EDMPrecond.state_dict()`, `model.*`) with a JSON description
//! `{"network": {EDM's network kwargs}, "precond": {"class_name": "EDMPrecond", …}}`.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointMeta, save_checkpoint};
use crate::pipeline::ModelSpec;
use crate::train::{RunConfig, TrainConfig};
use score_core::error::{Result, ScoreError};
use score_nn::edm::{EdmNetConfig, EdmPrecondConfig, EdmUNet};
use score_nn::import::StateDict;

/// What an EDM network is: its keyword arguments and its preconditioning (the JSON
/// that accompanies a safetensors state dict).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EdmDescription {
    /// EDM's network keyword arguments (`model_type`, `img_resolution`, …).
    pub network: EdmNetConfig,
    /// The preconditioning wrapper and its arguments.
    pub precond: EdmPrecondConfig,
}

/// An imported EDM network with its description.
#[derive(Debug)]
pub struct ImportedEdm {
    /// The network with the imported weights.
    pub net: EdmUNet,
    /// Its description.
    pub description: EdmDescription,
    /// Number of tensors loaded.
    pub tensors: usize,
}

fn bad(path: &Path, detail: String) -> ScoreError {
    ScoreError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    }
}

/// Read an EDM description (JSON) from `path`.
pub fn read_description(path: &Path) -> Result<EdmDescription> {
    let bytes = std::fs::read(path).map_err(|e| ScoreError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(path, format!("EDM description: {e}")))
}

/// Build the described network and load the precond's state dict `sd` (`model.*`
/// keys; the precond holds no other tensors) into it.
pub fn edm_from_state_dict(
    sd: &StateDict,
    description: EdmDescription,
    device: &Device,
) -> Result<ImportedEdm> {
    let cfg = &description.network;
    if cfg.out_channels != cfg.in_channels {
        return Err(bad(
            &sd.source,
            format!(
                "network: out_channels {} differs from in_channels {}: a denoiser returns an image of its input's shape",
                cfg.out_channels, cfg.in_channels
            ),
        ));
    }
    let net = cfg
        .init(device)
        .map_err(|e| bad(&sd.source, format!("network: {e}")))?;
    if let Some(other) = sd.tensors.keys().find(|k| !k.starts_with("model.")) {
        return Err(bad(
            &sd.source,
            format!("tensor '{other}': an EDM precond's state dict holds only model.* tensors"),
        ));
    }
    let inner = sd.strip_prefix("model.");
    let tensors = inner.tensors.len();
    let net = net.load_torch(&inner, cfg)?;
    Ok(ImportedEdm {
        net,
        description,
        tensors,
    })
}

/// Import a safetensors state dict described by the JSON at `description`.
pub fn import_edm_safetensors(
    weights: &Path,
    description: &Path,
    device: &Device,
) -> Result<ImportedEdm> {
    let desc = read_description(description)?;
    let sd = StateDict::read_safetensors(weights)?;
    edm_from_state_dict(&sd, desc, device)
}

/// Write an imported network as a scorelab checkpoint (sampling only: EMA slot, no
/// optimizer state); `source` is recorded as where the weights came from.
pub fn write_edm_checkpoint(imported: &ImportedEdm, out: &Path, source: &str) -> Result<()> {
    let cfg = &imported.description.network;
    let spec = ModelSpec::Edm {
        config: serde_json::to_value(cfg).expect("config serialises"),
        image_shape: [cfg.in_channels, cfg.img_resolution, cfg.img_resolution],
        dataset: source.to_string(),
    };
    let train = TrainConfig {
        steps: 0,
        precond: imported.description.precond.precond(),
        ..TrainConfig::default()
    };
    let run = RunConfig {
        train,
        extra: spec.to_json(),
        objective: serde_json::json!({"name": "imported", "from": source}),
    };
    let config = serde_json::to_value(&run).expect("run config serialises");
    let meta = CheckpointMeta::new(0, 0, config);
    save_checkpoint::<EdmUNet>(out, None, Some(&imported.net), None, &meta)
}
