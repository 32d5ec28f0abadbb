//! `cargo xtask bench-edm`: EDM's CIFAR-10 DDPM++ network (its published configuration,
//! 32×32×3, EDMPrecond) imported into scorelab, against PyTorch running the same
//! weights on this CPU (`benches/torch/edm_bench.py`).
//!
//! 1. PyTorch writes random weights as EDM's state dict and D(x; σ) of four inputs;
//!    scorelab imports them (`score_train::import`) and the largest difference is
//!    reported (the check fails above 1e-3 of max |D|).
//! 2. Rounds alternate (scorelab in this process, then torch in a subprocess); each side
//!    reports the median of `reps` per round: D(x; σ) at `batch` (no gradients) and one
//!    training step (EDM loss, backward, Adam). The table gives the median over rounds
//!    and torch/scorelab (> 1: scorelab faster).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use score_core::Denoiser;
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_nn::Preconditioned;

use crate::bench_vs_torch::{median, time_median, time_train_steps};

fn torch(python: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch/edm_bench.py");
    let out = Command::new(python).arg(&script).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = out.stdout.split(|&b| b == b'\n').rfind(|l| !l.is_empty());
    Ok(serde_json::from_slice(line.context("no output")?)?)
}

/// Largest |D_scorelab − D_torch| / max |D| on the four inputs `make` wrote.
fn check(
    net: &score_nn::edm::EdmUNet,
    p: score_core::Precond,
    work: &Path,
    dev: &Device,
) -> Result<f64> {
    let read = |n: &str| score_io::npy::read_npy(&work.join(n));
    let (x, s, d) = (read("x.npy")?, read("sigma.npy")?, read("d_torch.npy")?);
    let xt = Tensor::<4>::from_data(
        TensorData::new(
            x.data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            x.shape.clone(),
        ),
        dev,
    );
    let st = score_core::tensor::tensor1(&s.data, dev);
    let ours = to_vec_f32(Preconditioned::new(net, p).denoise(xt, st, None))?;
    let scale = d.data.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&d.data)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    Ok(diff / scale)
}

/// scorelab's (forward, training step) medians at `batch`.
fn ours(weights: &Path, desc: &Path, batch: usize, reps: usize) -> Result<(f64, f64)> {
    let dev = Device::flex();
    let imported = score_train::import::import_edm_safetensors(weights, desc, &dev)?;
    let precond = imported.description.precond.precond();
    let mut rng = stream_rng(0, 0x4544, batch as u64);
    let x0 = randn([batch, 3, 32, 32], &mut rng, &dev);
    let noise = randn([batch, 3, 32, 32], &mut rng, &dev);
    let sigma = randn([batch], &mut rng, &dev)
        .mul_scalar(1.2)
        .sub_scalar(1.2)
        .exp();
    let xs = x0.clone() + noise.clone() * sigma.clone().reshape([batch, 1, 1, 1]);
    let den = Preconditioned::new(&imported.net, precond);
    let fwd = time_median(reps, || {
        let _ = to_vec_f32(den.denoise(xs.clone(), sigma.clone(), None).narrow(0, 0, 1));
    });
    let ad = dev.autodiff();
    let mut net = imported
        .description
        .network
        .init(&ad)
        .map_err(anyhow::Error::msg)?;
    net = score_train::checkpoint::copy_weights(&imported.net, net)?;
    let batch = (
        x0.to_device(&ad),
        sigma.to_device(&ad),
        noise.to_device(&ad),
    );
    let step = time_train_steps(net, &precond, batch, reps);
    Ok((fwd, step))
}

/// Run the check and `rounds` alternating rounds; write `bench_edm.{md,json}` under
/// `out` and return the markdown.
pub fn run(
    out: &Path,
    rounds: usize,
    reps: usize,
    batch: usize,
    python: Option<PathBuf>,
) -> Result<String> {
    let python = crate::bench_vs_torch::torch_python(python)?;
    let work = std::env::temp_dir().join(format!("scorelab-bench-edm-{}", std::process::id()));
    let w = work.to_str().context("temp dir")?;
    let made = torch(&python, &["--make", w])?;
    let (weights, desc) = (
        work.join("weights.safetensors"),
        work.join("description.json"),
    );
    let dev = Device::flex();
    let imported = score_train::import::import_edm_safetensors(&weights, &desc, &dev)?;
    let rel = check(
        &imported.net,
        imported.description.precond.precond(),
        &work,
        &dev,
    )?;
    if rel > 1e-3 {
        bail!("scorelab and torch differ by {rel:.2e} of max |D|");
    }
    let (b, r) = (batch.to_string(), reps.to_string());
    let mut rows: Vec<[f64; 4]> = Vec::new();
    let mut label = String::new();
    for round in 0..rounds {
        let (f, s) = ours(&weights, &desc, batch, reps)?;
        let t = torch(
            &python,
            &["--time", w, "--batch", &b, "--reps", &r, "--threads", "2"],
        )?;
        label = t["impl"].as_str().unwrap_or("torch").to_string();
        let tf = t["seconds"]["forward"].as_f64().context("torch forward")?;
        let ts = t["seconds"]["train_step"]
            .as_f64()
            .context("torch train_step")?;
        eprintln!("round {round}: ours {f:.3}/{s:.3} s, torch {tf:.3}/{ts:.3} s");
        rows.push([f, s, tf, ts]);
    }
    let col = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    let (f, s, tf, ts) = (col(0), col(1), col(2), col(3));
    let md = format!(
        "EDM CIFAR-10 DDPM++ (32×32×3, {} parameters, EDMPrecond), batch {batch}, CPU, {rounds} alternating rounds × {reps} reps (medians); scorelab vs {label}; max |D_scorelab − D_torch| = {rel:.1e} of max |D|\n\n\
         | operation | scorelab | torch | torch / scorelab |\n|---|---|---|---|\n\
         | D(x; σ), no gradients | {:.3} s | {:.3} s | {:.2} |\n\
         | training step (loss, backward, Adam) | {:.3} s | {:.3} s | {:.2} |\n",
        made["params"],
        f,
        tf,
        tf / f,
        s,
        ts,
        ts / s
    );
    std::fs::create_dir_all(out)?;
    let json = serde_json::json!({"batch": batch, "rounds": rows, "median": {"ours_forward": f, "ours_train_step": s, "torch_forward": tf, "torch_train_step": ts}, "check_rel": rel, "torch": label, "params": made["params"]});
    score_core::fs::write_atomic(&out.join("bench_edm.md"), md.as_bytes())?;
    score_core::fs::write_atomic(
        &out.join("bench_edm.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(md)
}
