//! `config.toml`, the effective configuration every training run writes beside its
//! checkpoint (as EDM's `training_options.json`): its keys are `scorelab train`'s flags,
//! so that `scorelab train --config OUT/config.toml --out OTHER` repeats the run.

use std::path::Path;

use score_train::train::{BatchOrder, LrSchedule, TrainConfig};

use crate::error::Result;
use crate::record::RunRecord;

/// The name of the effective configuration in a run's folder.
pub const RUN_FILE: &str = "config.toml";

/// One `key = value` line of a run file.
fn line(key: &str, value: impl Into<toml::Value>) -> String {
    format!("{key} = {}\n", value.into())
}

/// The effective configuration of a run as a run file: every setting the run's
/// results depend on, with σ_data resolved from the data (so a repeat does not
/// recompute it).
pub fn effective(cfg: &TrainConfig, rec: &RunRecord) -> String {
    let mut s = String::from(
        "# The effective configuration of this run (written by `scorelab train`).\n\
         # Repeat it: scorelab train --config config.toml --out OTHER_FOLDER\n",
    );
    if let Some(fp) = &rec.fingerprint {
        s += &format!("# data fingerprint: {fp}\n");
    }
    s += &line("seed", cfg.seed as i64);
    s += &line("data", rec.data.as_str());
    if let Some(d) = &rec.data_dir {
        s += &line("data_dir", d.display().to_string());
    }
    s += &optimiser_lines(cfg);
    s += &line("cond", rec.cond.as_str());
    if rec.cond == "class" {
        s += &line("label_dropout", cfg.label_dropout);
    }
    s += &line("sigma_data", cfg.precond.sigma_data());
    s += &network_lines(rec);
    s
}

/// The optimiser's and the schedule's lines.
fn optimiser_lines(cfg: &TrainConfig) -> String {
    let schedule = match cfg.lr_schedule {
        LrSchedule::Constant => "constant".to_string(),
        LrSchedule::InverseSqrt { ref_steps } => format!("inverse-sqrt:{ref_steps}"),
    };
    let batches = match cfg.batches {
        BatchOrder::Epochs => "epochs",
        BatchOrder::Replacement => "replacement",
    };
    let [b1, b2] = cfg.adam_betas;
    [
        line("steps", cfg.steps as i64),
        line("batch_size", cfg.batch_size as i64),
        line("lr", cfg.lr),
        line("lr_schedule", schedule),
        line("grad_clip", cfg.grad_clip.unwrap_or(0.0)),
        line("grad_accumulation", cfg.grad_accumulation as i64),
        line("weight_decay", cfg.weight_decay),
        line("adam_betas", format!("{b1},{b2}")),
        line("batches", batches),
        line("checkpoint_every", cfg.checkpoint_every as i64),
    ]
    .concat()
}

/// The data treatment's, the network's and the augmentation's lines.
fn network_lines(rec: &RunRecord) -> String {
    let mut s = line("subset", rec.subset as i64);
    s += &line("xflip", rec.xflip);
    if let Some(r) = rec.resolution {
        s += &line("resolution", r as i64);
    }
    s += &line("channels", rec.channels as i64);
    s += &line("arch", rec.arch.as_str());
    if rec.arch != "scorelab" {
        s += &line("blocks", rec.blocks as i64);
    }
    if let Some(aug) = &rec.augment {
        let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let kinds: Vec<String> = (aug.scoreaug.kinds.iter())
            .map(|k| name(serde_json::to_value(k).unwrap_or_default()))
            .collect();
        s += &line(
            "augment",
            name(serde_json::to_value(aug.mode).unwrap_or_default()),
        );
        s += &line("aug_p", aug.scoreaug.p);
        s += &line("aug_transforms", kinds.join(","));
        s += &line("no_aug_cond", !aug.condition);
        if matches!(aug.mode, scoreaug::Mode::Nla | scoreaug::Mode::NlaScoreAug) {
            let set = if aug.edm.is_some() { "edm" } else { "blit" };
            s += &line("nla_set", set);
        }
    }
    s
}

/// Write `OUT/config.toml` atomically.
pub fn write(out: &Path, cfg: &TrainConfig, rec: &RunRecord) -> Result<()> {
    let path = out.join(RUN_FILE);
    score_core::fs::write_atomic(&path, effective(cfg, rec).as_bytes())?;
    Ok(())
}
