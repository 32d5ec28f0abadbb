//! `cargo xtask experiment fashion-60k [--quick] [--n N] [--ref NAME]`: the demo's UNet
//! trained with the shipped checkpoint's settings (3 000 steps, batch 32, width 16,
//! seed 0) on Fashion-MNIST's 60 000 training images, then FID of it and of the
//! shipped checkpoint (trained on 9 000 test images) from the same sampler, seed and
//! count, against one reference (issue 28).

use crate::own_data::{fid_spec, train, train_spec, write_report};
use anyhow::Result;
use score_core::burn::tensor::Device;
use scorelab_run::TrainSpec;
use std::path::Path;

/// What the study runs: training steps, samples per model, the FID reference.
pub struct Plan {
    /// Optimisation steps (the shipped checkpoint's 3 000).
    pub steps: usize,
    /// Samples per model.
    pub n: usize,
    /// `--ref` of `scorelab fid`.
    pub reference: String,
}

/// Run the study in `work` (resuming a run there) and write `results/report.json`.
pub fn experiment(work: &Path, results: &Path, plan: &Plan) -> Result<()> {
    crate::fashion_setup::run()?;
    let run = work.join("run");
    let trained = train(&TrainSpec {
        data: Some("fashion-mnist".into()),
        channels: Some(16),
        steps: Some(plan.steps),
        seed: Some(0),
        ..train_spec(&run)
    })?;
    let shipped = score_train::pipeline::shipped_checkpoint();
    let mut rows = Vec::new();
    for (name, ck) in [
        ("shipped (9k test images)", shipped),
        ("60k training split", run.join("checkpoint.safetensors")),
    ] {
        let t0 = std::time::Instant::now();
        let mut spec = fid_spec(None, Some(ck.clone()), &plan.reference);
        spec.n = Some(plan.n);
        let r = scorelab_run::fid::fid(&spec, &Device::flex(), &scorelab_run::fid::Quiet)?;
        rows.push(serde_json::json!({
            "model": name, "checkpoint": ck, "fid": r["fid"], "n": r["n"], "n_ref": r["n_ref"],
            "std_error": r["bootstrap"]["std_error"], "interval95": r["bootstrap"]["interval95"],
            "seconds": t0.elapsed().as_secs_f64(),
        }));
    }
    let report = serde_json::json!({
        "steps": plan.steps, "n": plan.n, "ref": plan.reference, "sampler": "heun, 18 levels (35 evaluations), seed 0",
        "train": trained, "fid": rows,
    });
    write_report(results, &report)
}
