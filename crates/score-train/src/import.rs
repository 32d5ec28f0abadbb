//! Bring your own model: EDM networks and diffusers' UNet2DModel into scorelab
//! checkpoints that every command taking `--checkpoint` reads.
//!
//! Two sources: EDM's own snapshots (`network-snapshot-*.pkl`, read by
//! [`crate::edm_pickle`] without running Python) and a PyTorch state dict in safetensors
//! (the keys of `EDMPrecond.state_dict()`, `model.*`) with a JSON description
//! `{"network": {EDM's network kwargs}, "precond": {"class_name": "EDMPrecond", …}}`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointMeta, save_checkpoint};
use crate::pipeline::ModelSpec;
use crate::train::{RunConfig, TrainConfig};
use score_core::error::{Result, ScoreError};
use score_core::precond::{BetaKind, BetaSchedule, Precond};
use score_nn::diffusers::{DiffusersUNet, UNet2DConfig, modern_key};
use score_nn::edm::{EdmNetConfig, EdmPrecondConfig, EdmUNet};
use score_nn::import::{StateDict, load_state_dict};

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
    let bytes = score_core::fs::read_file(path)?;
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
    if let EdmPrecondConfig::Iddpm { m, .. } = description.precond
        && !(m >= 2.0 && m <= MAX_STEPS as f64 && m.fract() == 0.0)
    {
        return Err(bad(
            &sd.source,
            format!(
                "precond: iDDPMPrecond's M = {m}, expected a whole number from 2 to {MAX_STEPS}"
            ),
        ));
    }
    let iddpm = matches!(description.precond, EdmPrecondConfig::Iddpm { .. });
    let expected = if iddpm {
        2 * cfg.in_channels
    } else {
        cfg.in_channels
    };
    if cfg.out_channels != expected {
        return Err(bad(
            &sd.source,
            format!(
                "network: out_channels {}, expected {expected} for {} in_channels with this precond (iDDPMPrecond: twice, else the same)",
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
    write_imported(
        &imported.net,
        &spec,
        imported.description.precond.precond(),
        out,
        source,
    )
}

/// Write any imported network with its description `spec` and preconditioning.
pub fn write_imported<M: Module>(
    net: &M,
    spec: &ModelSpec,
    precond: Precond,
    out: &Path,
    source: &str,
) -> Result<()> {
    let train = TrainConfig {
        steps: 0,
        precond,
        ..TrainConfig::default()
    };
    let run = RunConfig {
        train,
        extra: spec.to_json(),
        objective: serde_json::json!({"name": "imported", "from": source}),
    };
    let config = serde_json::to_value(&run).expect("run config serialises");
    let meta = CheckpointMeta::new(0, 0, config);
    save_checkpoint::<M>(out, None, Some(net), None, &meta)
}

/// The most discrete steps a schedule may have (diffusers' and EDM's use 1000): the
/// preconditioning rebuilds its table of levels for every σ it converts.
pub const MAX_STEPS: usize = 100_000;

/// diffusers' scheduler options that make a UNet2DModel a denoiser of σ (its
/// `scheduler_config.json`; each may be overridden).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SchedulerOptions {
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: Option<String>,
    /// β of the first step.
    pub beta_start: Option<f64>,
    /// β of the last step.
    pub beta_end: Option<f64>,
    /// Training steps.
    pub num_train_timesteps: Option<usize>,
    /// `epsilon` or `v_prediction`.
    pub prediction_type: Option<String>,
}

impl SchedulerOptions {
    /// `self` where set, else `base`.
    pub fn or(self, base: SchedulerOptions) -> Self {
        Self {
            beta_schedule: self.beta_schedule.or(base.beta_schedule),
            beta_start: self.beta_start.or(base.beta_start),
            beta_end: self.beta_end.or(base.beta_end),
            num_train_timesteps: self.num_train_timesteps.or(base.num_train_timesteps),
            prediction_type: self.prediction_type.or(base.prediction_type),
        }
    }

    /// The preconditioning (DDPM's linear 1e−4 → 0.02 over 1000 steps and ε where unset).
    pub fn precond(&self) -> std::result::Result<Precond, String> {
        let kind = match self.beta_schedule.as_deref().unwrap_or("linear") {
            "linear" => BetaKind::Linear,
            "scaled_linear" => BetaKind::ScaledLinear,
            "squaredcos_cap_v2" => BetaKind::SquaredcosCapV2,
            other => {
                return Err(format!(
                    "beta_schedule: {other:?} is not supported (linear, scaled_linear, squaredcos_cap_v2)"
                ));
            }
        };
        let v_prediction = match self.prediction_type.as_deref().unwrap_or("epsilon") {
            "epsilon" => false,
            "v_prediction" => true,
            other => {
                return Err(format!(
                    "prediction_type: {other:?} is not supported (epsilon, v_prediction)"
                ));
            }
        };
        let schedule = BetaSchedule {
            kind,
            beta_start: self.beta_start.unwrap_or(1e-4),
            beta_end: self.beta_end.unwrap_or(0.02),
            steps: self.num_train_timesteps.unwrap_or(1000),
        };
        let valid = (2..=MAX_STEPS).contains(&schedule.steps)
            && schedule.beta_start > 0.0
            && schedule.beta_end < 1.0
            && schedule.beta_start <= schedule.beta_end;
        if !valid {
            return Err(format!(
                "the β schedule {schedule:?}: needs 2 to {MAX_STEPS} steps and 0 < beta_start ≤ beta_end < 1"
            ));
        }
        Ok(Precond::Discrete {
            schedule,
            v_prediction,
        })
    }
}

/// An imported diffusers UNet2DModel.
#[derive(Debug)]
pub struct ImportedDiffusers {
    /// The network.
    pub net: DiffusersUNet,
    /// Its configuration.
    pub config: UNet2DConfig,
    /// The preconditioning from the scheduler options.
    pub precond: Precond,
    /// Tensors loaded.
    pub tensors: usize,
    /// The scheduler file read, if any.
    pub scheduler: Option<PathBuf>,
}

fn first_existing(paths: &[PathBuf]) -> Option<PathBuf> {
    paths.iter().find(|p| p.is_file()).cloned()
}

/// The weights file of a diffusers model folder (full or fp16 safetensors); the error
/// tells a `.bin`-only folder (convert it) from one with no weights at all.
fn diffusers_weights(base: &Path) -> Result<PathBuf> {
    first_existing(&[
        base.join("diffusion_pytorch_model.safetensors"),
        base.join("diffusion_pytorch_model.fp16.safetensors"),
    ])
    .ok_or_else(|| {
        let bin = base.join("diffusion_pytorch_model.bin").is_file();
        bad(base, match bin {
            true => "holds diffusion_pytorch_model.bin but no .safetensors: convert it with safetensors first (a pickle is not read)".into(),
            false => "no diffusion_pytorch_model.safetensors here or in unet/ (expected a diffusers UNet2DModel folder)".into(),
        })
    })
}

/// Import diffusers' `UNet2DModel` from `dir` (`config.json` and
/// `diffusion_pytorch_model.safetensors`, or the same under `dir/unet`); the β schedule
/// from `scheduler_config.json` beside it (or in `scheduler/` of the pipeline folder),
/// `overrides` taking precedence.
pub fn import_diffusers(
    dir: &Path,
    overrides: SchedulerOptions,
    device: &Device,
) -> Result<ImportedDiffusers> {
    let base = if dir.join("unet/config.json").is_file() {
        dir.join("unet")
    } else {
        dir.to_path_buf()
    };
    let cfg_path = base.join("config.json");
    let weights = diffusers_weights(&base)?;
    let bytes = score_core::fs::read_file(&cfg_path)?;
    let raw: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(&cfg_path, format!("not JSON: {e}")))?;
    if let Some(c) = raw
        .get("_class_name")
        .and_then(|c| c.as_str())
        .filter(|c| *c != "UNet2DModel")
    {
        return Err(bad(
            &cfg_path,
            format!("_class_name: {c} (only UNet2DModel, the pixel-space UNet, is supported)"),
        ));
    }
    let config: UNet2DConfig = serde_json::from_value(raw)
        .map_err(|e| bad(&cfg_path, format!("UNet2DModel config: {e}")))?;
    config.side().map_err(|e| bad(&cfg_path, e))?;
    if config.in_channels != config.out_channels {
        return Err(bad(
            &cfg_path,
            format!(
                "out_channels {} differs from in_channels {} (a learned-variance model? not supported)",
                config.out_channels, config.in_channels
            ),
        ));
    }
    let net = config.init(device).map_err(|e| bad(&cfg_path, e))?;
    let scheduler = first_existing(&[
        base.join("scheduler_config.json"),
        dir.join("scheduler_config.json"),
        dir.join("scheduler/scheduler_config.json"),
        base.join("../scheduler/scheduler_config.json"),
    ]);
    let from_file = match &scheduler {
        Some(p) => {
            let b = score_core::fs::read_file(p)?;
            serde_json::from_slice::<SchedulerOptions>(&b)
                .map_err(|e| bad(p, format!("scheduler config: {e}")))?
        }
        None => SchedulerOptions::default(),
    };
    let precond = overrides
        .or(from_file)
        .precond()
        .map_err(|e| bad(scheduler.as_deref().unwrap_or(dir), e))?;
    let sd = StateDict::read_safetensors(&weights)?;
    let sd = StateDict {
        tensors: sd
            .tensors
            .into_iter()
            .map(|(k, v)| (modern_key(&k), v))
            .collect(),
        source: sd.source,
    };
    let tensors = sd.tensors.len();
    let net = load_state_dict(net, &sd, |p| p.to_string(), |_| false)?;
    Ok(ImportedDiffusers {
        net,
        config,
        precond,
        tensors,
        scheduler,
    })
}

/// Write an imported UNet2DModel as a scorelab checkpoint.
pub fn write_diffusers_checkpoint(
    imported: &ImportedDiffusers,
    out: &Path,
    source: &str,
) -> Result<()> {
    let c = &imported.config;
    let side = c.sample_size.unwrap_or(0);
    let spec = ModelSpec::Diffusers {
        config: serde_json::to_value(c).expect("config serialises"),
        image_shape: [c.in_channels, side, side],
        dataset: source.to_string(),
    };
    write_imported(&imported.net, &spec, imported.precond, out, source)
}
