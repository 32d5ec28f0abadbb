//! `cargo xtask`: developer chores and experiment runners.
//!
//! - `cargo xtask train-demo-checkpoint`: train the UNet shipped in
//!   `data/checkpoints/fashion-mnist-unet.safetensors`, reproducibly (seed 0, 3000 steps
//!   on the first 9 000 shipped Fashion-MNIST test images), resumable.
//! - `cargo xtask ci`: what `.ci/run` runs (format check, tests).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Parser, Subcommand};
use score_core::pipeline;

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "scorelab developer tasks and experiment runners"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Train the demo UNet and export its EMA weights to data/checkpoints.
    TrainDemoCheckpoint {
        /// Optimisation steps.
        #[arg(long, default_value_t = 3000)]
        steps: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Working folder (full checkpoint with optimizer state, log); rerunning resumes.
        #[arg(long, default_value = "out/xtask/demo-checkpoint")]
        work: PathBuf,
        /// Where the sampling-only checkpoint goes.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Format check and the test suite, as CI runs them.
    Ci,
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::TrainDemoCheckpoint {
            steps,
            seed,
            work,
            out,
        } => {
            let device = Device::flex();
            let r = pipeline::train_demo_unet(steps, seed, &work, true, &device, true)?;
            let out = out.unwrap_or_else(pipeline::shipped_checkpoint);
            pipeline::export_ema(&work.join("checkpoint.safetensors"), &out, &device)?;
            println!(
                "trained {} steps (last loss {:.4}, {:.0} s this call); wrote {}",
                r.step,
                r.last_loss,
                r.seconds,
                out.display()
            );
        }
        Task::Ci => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            run(Command::new(&cargo).args(["fmt", "--all", "--", "--check"]))?;
            run(Command::new(&cargo).args(["test", "--workspace"]))?;
        }
    }
    Ok(())
}
