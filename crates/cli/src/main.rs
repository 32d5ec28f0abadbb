//! `scorelab`: train EDM denoisers, sample from them, inspect σ grids and run the demo.
//!
//! Every subcommand takes `--seed`, `--device flex|wgpu|cuda` and `--json` (print the
//! numbers as one JSON object on stdout; progress goes to stderr).

/// `println!` that ends the program quietly when stdout is closed (`scorelab … | head`)
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

mod args;
mod common;
mod corpus_args;
mod demo_cmd;
mod distill_cmd;
mod feedback;
mod fid;
mod gaussian;
mod import_cmd;
mod latent_cmd;
mod musicscore;
mod ntk;
mod run_file;
mod sample_cmd;
mod scoreaug_cmd;
mod systems;
mod textscore_cmd;
mod train_cmd;

use crate::args::*;
use crate::common::*;
use crate::demo_cmd::cmd_demo;
use crate::sample_cmd::{cmd_ems, cmd_sample, cmd_sigmas};
use crate::train_cmd::cmd_train;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "scorelab",
    version,
    about = "Score-based diffusion research toolkit (EDM formulation) on burn",
    long_about = "Score-based diffusion research toolkit (EDM formulation) on burn.\n\n\
        Start with `scorelab demo`: it samples the shipped Fashion-MNIST UNet and prints metrics.\n\
        `scorelab demo --train` trains one from scratch first (minutes on a laptop CPU)."
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train an EDM-preconditioned denoiser (UNet on images, MLP on vectors).
    Train(TrainArgs),
    /// Sample from a checkpoint; writes samples.npy (and samples.png for images).
    Sample(SampleArgs),
    /// Print a σ grid.
    Sigmas(SigmasArgs),
    /// Closed-form Gaussian scores: fit, solve, sample, explained variance.
    #[command(subcommand)]
    Gaussian(gaussian::GaussianCmd),
    /// The NTK / kernel-regression score estimator: Gram matrices, fit, sample.
    #[command(subcommand)]
    Ntk(ntk::NtkCmd),
    /// The MusicScore dataset (or the shipped corpus in data/musicscore): stats, verify,
    /// prompts, export to imagefolder, preview.
    #[command(subcommand)]
    Musicscore(musicscore::MusicScoreCmd),
    /// The main job: sample the shipped Fashion-MNIST UNet (or train one first), write an
    /// image grid and print metrics.
    Demo(DemoArgs),
    /// Empirical model statistics of a checkpoint for `sample --sampler dpm-solver-v3`.
    Ems(EmsArgs),
    /// FID (FID Inception-v3, with a bootstrap standard error), KID and precision/recall.
    Fid(fid::FidArgs),
    /// Write the FID statistics (`mu`, `sigma`) of a set of images as `.npz`.
    FidStats(fid::FidStatsArgs),
    /// ScoreAug: measures of a trained model (equivariance, train vs held-out loss,
    /// leakage, memorisation, FID).
    #[command(subcommand)]
    Scoreaug(scoreaug_cmd::ScoreAugCmd),
    /// Distil a checkpoint into a one-step generator (plain score distillation or
    /// DisBack); `sample` then draws from OUT/generator.safetensors in one evaluation.
    Distill(distill_cmd::DistillArgs),
    /// Bring your own model: import an EDM snapshot (.pkl) or state dict into a
    /// checkpoint that every command taking --checkpoint reads.
    #[command(subcommand)]
    Import(import_cmd::ImportCmd),
    /// D(x; σ) of an image checkpoint on given inputs (.npy), written as .npy.
    Denoise(import_cmd::DenoiseArgs),
}

/// Ctrl-C: the first asks training to save and stop after its step; a second quits.
fn install_interrupt_handler() {
    let mut asked = false;
    let _ = ctrlc::set_handler(move || {
        if asked {
            std::process::exit(130);
        }
        asked = true;
        score_train::fit::request_stop();
        eprintln!(
            "\ninterrupt: stopping after this step and saving (Ctrl-C again to quit at once)"
        );
    });
}

/// The long flags `train` takes (its own and the global ones) and whether each is a
/// switch (a flag without a value).
fn train_flags() -> Vec<(String, bool)> {
    let mut cli = cli_command();
    cli.build();
    let train = cli
        .find_subcommand("train")
        .expect("the CLI has a train subcommand");
    train
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let switch = matches!(
                a.get_action(),
                clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
            );
            (!run_file::NOT_KEYS.contains(&long)).then(|| (long.to_string(), switch))
        })
        .collect()
}

/// clap's description of the command line, with negative numbers taken as values in
/// every subcommand: `--lr -1` then reaches the flag's own check ("must be positive")
/// instead of failing as "unexpected argument '-1'".
fn cli_command() -> clap::Command {
    fn negatives(cmd: clap::Command) -> clap::Command {
        cmd.allow_negative_numbers(true).mut_subcommands(negatives)
    }
    use clap::CommandFactory;
    negatives(Cli::command())
}

/// The command line, parsed with clap's later-flag-wins rule for repeated flags.
fn parse_with_overrides(argv: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let m = cli_command()
        .args_override_self(true)
        .try_get_matches_from(argv)?;
    Cli::from_arg_matches(&m)
}

/// The command line, with `train --config FILE`'s keys as flags before the given ones.
fn parse_cli() -> Result<Cli> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = {
        use clap::FromArgMatches;
        let m = cli_command().get_matches_from(&argv);
        Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
    };
    let Command::Train(TrainArgs {
        config: Some(file), ..
    }) = &cli.command
    else {
        return Ok(cli);
    };
    let spliced = run_file::splice(&argv, run_file::flags_of(file, &train_flags())?)?;
    parse_with_overrides(spliced).map_err(|e| {
        let msg = e.render().to_string();
        let first = msg.lines().next().unwrap_or_default();
        anyhow::anyhow!(
            "--config {}: {}",
            file.display(),
            first.trim_start_matches("error: ")
        )
    })
}

fn run() -> Result<()> {
    let cli = parse_cli()?;
    install_interrupt_handler();
    if let Some(n) = cli.common.threads {
        if n == 0 {
            bail!("--threads: must be at least 1");
        }
        // Each thread reserves a stack: 100000 of them took minutes to start and
        // gained nothing. 16 per core is far past any speed-up.
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if n > 16 * cores {
            bail!("--threads {n}: more than 16 per core of this machine's {cores}");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("--threads: setting up the thread pool")?;
    }
    match &cli.command {
        Command::Train(a) => cmd_train(&cli.common, a),
        Command::Sample(a) => cmd_sample(&cli.common, a),
        Command::Sigmas(a) => cmd_sigmas(&cli.common, a),
        Command::Gaussian(g) => gaussian::run(&cli.common, g),
        Command::Ntk(n) => ntk::run(&cli.common, n),
        Command::Musicscore(m) => musicscore::run(m, &cli.common),
        Command::Demo(a) => cmd_demo(&cli.common, a),
        Command::Ems(a) => cmd_ems(&cli.common, a),
        Command::Fid(a) => fid::run_fid(&cli.common, a),
        Command::FidStats(a) => fid::run_fid_stats(&cli.common, a),
        Command::Scoreaug(s) => scoreaug_cmd::run(&cli.common, s),
        Command::Distill(a) => distill_cmd::cmd_distill(&cli.common, a),
        Command::Import(i) => import_cmd::run_import(&cli.common, i),
        Command::Denoise(a) => import_cmd::run_denoise(&cli.common, a),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error, then any cause it does not already spell out.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("error: {msg}");
            let interrupted = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<score_core::ScoreError>(),
                    Some(score_core::ScoreError::Interrupted { .. })
                )
            });
            // 130: a shell's code for a run ended by Ctrl-C.
            std::process::ExitCode::from(if interrupted { 130 } else { 1 })
        }
    }
}
