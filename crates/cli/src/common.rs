//! What every command shares: the global flags, the device, output (JSON or text),
//! progress bars, the sampler flags, the run-folder guard and the starting noise.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;
use score_core::samplers::Sampler;
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_io::images::{ImageDataset, Split};
use score_io::npy::read_npy_finite;
use score_train::checkpoint::CheckpointFile;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Seed of every random draw (initial noise, training batches, weights) [default: 0;
    /// on `train --resume`, the checkpoint's].
    #[arg(long = "seed", global = true)]
    pub(crate) seed_arg: Option<u64>,
    /// Compute device: flex (CPU, default), wgpu or cuda (builds with `--features wgpu|cuda`).
    #[arg(long, global = true, default_value = "flex")]
    pub(crate) device: String,
    /// Print results as one JSON object on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Worker threads of the CPU backend and data loading (rayon's global pool)
    /// [default: one per core, or $RAYON_NUM_THREADS].
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
}

impl Common {
    /// The seed: `--seed`, or 0.
    pub(crate) fn seed(&self) -> u64 {
        self.seed_arg.unwrap_or(0)
    }
}

pub(crate) fn device(name: &str) -> Result<Device> {
    Ok(score_core::device::by_name(name)?)
}

pub(crate) fn emit(json: bool, value: serde_json::Value, human: impl FnOnce()) {
    if json {
        outln!("{value}");
    } else {
        human();
    }
}

/// The sampler options every sampling command takes.
#[derive(Args, Clone, Default)]
pub(crate) struct SamplerOpts {
    /// heun: S_churn, the noise injected over the run (EDM Algorithm 2; 0 =
    /// deterministic).
    #[arg(long)]
    pub(crate) churn: Option<f64>,
    /// heun: churn only where σ ≥ S_tmin [default: 0].
    #[arg(long)]
    pub(crate) s_tmin: Option<f64>,
    /// heun: churn only where σ ≤ S_tmax [default: inf].
    #[arg(long)]
    pub(crate) s_tmax: Option<f64>,
    /// heun, euler-ancestral, ddim and the SDE samplers: scale of the injected noise
    /// [default: 1].
    #[arg(long)]
    pub(crate) s_noise: Option<f64>,
    /// euler-ancestral and ddim: the fraction of the ancestral noise (1 = ancestral, 0 =
    /// Euler) [default: 1, ddim 0]; dpmpp-2m-sde and dpmpp-3m-sde: the SDE's η (0 =
    /// the ODE solver) [default: 1].
    #[arg(long)]
    pub(crate) eta: Option<f64>,
    /// unipc: the predictor order p, 1 to 3 (with the corrector the order is p + 1)
    /// [default: 2].
    #[arg(long)]
    pub(crate) order: Option<usize>,
    /// unipc: predictor only, without the corrector UniC.
    #[arg(long)]
    pub(crate) no_corrector: bool,
    /// unipc: B(h) = h (bh1) instead of e^h − 1 (bh2).
    #[arg(long)]
    pub(crate) bh1: bool,
    /// dpmpp-3m-sde: the exact third-order coefficient 2φ₃ instead of k-diffusion's φ₃.
    #[arg(long)]
    pub(crate) exact_phi3: bool,
    /// dpm-solver-v3: the model statistics written by `scorelab ems`.
    #[arg(long)]
    pub(crate) ems: Option<PathBuf>,
}

impl SamplerOpts {
    fn dpm_solver_v3(&self) -> Result<Sampler> {
        let Some(path) = &self.ems else {
            bail!(
                "--sampler dpm-solver-v3 needs --ems FILE: compute the model statistics once with `scorelab ems --checkpoint … --out ems.json`"
            );
        };
        let given = self.churn.is_some()
            || self.s_tmin.is_some()
            || self.s_tmax.is_some()
            || self.s_noise.is_some()
            || self.eta.is_some()
            || self.no_corrector
            || self.bh1
            || self.exact_phi3;
        if given {
            bail!("dpm-solver-v3 takes --ems and --order only");
        }
        let order = self.order.unwrap_or(3);
        if !(1..=3).contains(&order) {
            bail!("--order: DPM-Solver-v3's order is 1, 2 or 3, got {order}");
        }
        let stats = score_core::samplers::dpm_solver_v3::ModelStatistics::load(path)?;
        Ok(Sampler::DpmSolverV3(Box::new(
            score_core::samplers::dpm_solver_v3::V3Sampler {
                stats,
                opts: score_core::samplers::dpm_solver_v3::V3Options { order },
            },
        )))
    }

    /// The sampler `name` with these options; an option the sampler does not take is
    /// an error naming it.
    pub(crate) fn build(&self, name: &str, seed: u64) -> Result<Sampler> {
        for (flag, v) in [
            ("--churn", self.churn),
            ("--s-tmin", self.s_tmin),
            ("--s-noise", self.s_noise),
            ("--eta", self.eta),
        ] {
            if let Some(v) = v
                && !(v >= 0.0 && v.is_finite())
            {
                bail!("{flag}: must be non-negative and finite, got {v}");
            }
        }
        if name == "dpm-solver-v3" {
            return self.dpm_solver_v3();
        }
        if self.ems.is_some() {
            bail!("--ems applies to dpm-solver-v3, not {name}");
        }
        let sampler = name.parse::<Sampler>()?.with_seed(seed);
        // Which flags the chosen sampler takes.
        let takes = |flag: &str| -> bool {
            matches!(
                (&sampler, flag),
                (
                    Sampler::Heun(_),
                    "--churn" | "--s-tmin" | "--s-tmax" | "--s-noise"
                ) | (
                    Sampler::EulerAncestral(_)
                        | Sampler::Ddim(_)
                        | Sampler::DpmppTwoMSde(_)
                        | Sampler::DpmppThreeMSde(_),
                    "--eta" | "--s-noise",
                ) | (Sampler::DpmppThreeMSde(_), "--exact-phi3")
                    | (Sampler::UniPc(_), "--order" | "--no-corrector" | "--bh1")
            )
        };
        let given = [
            ("--churn", self.churn.is_some()),
            ("--s-tmin", self.s_tmin.is_some()),
            ("--s-tmax", self.s_tmax.is_some()),
            ("--s-noise", self.s_noise.is_some()),
            ("--eta", self.eta.is_some()),
            ("--order", self.order.is_some()),
            ("--no-corrector", self.no_corrector),
            ("--bh1", self.bh1),
            ("--exact-phi3", self.exact_phi3),
        ];
        if let Some((flag, _)) = given.iter().find(|(f, g)| *g && !takes(f)) {
            bail!("{flag} does not apply to the {name} sampler");
        }
        Ok(match sampler {
            Sampler::Heun(mut o) => {
                o.s_churn = self.churn.unwrap_or(o.s_churn);
                o.s_tmin = self.s_tmin.unwrap_or(o.s_tmin);
                o.s_tmax = self.s_tmax.unwrap_or(o.s_tmax);
                o.s_noise = self.s_noise.unwrap_or(o.s_noise);
                Sampler::Heun(o)
            }
            Sampler::EulerAncestral(mut o) | Sampler::Ddim(mut o) => {
                o.eta = self.eta.unwrap_or(o.eta);
                o.s_noise = self.s_noise.unwrap_or(o.s_noise);
                if name == "ddim" {
                    Sampler::Ddim(o)
                } else {
                    Sampler::EulerAncestral(o)
                }
            }
            Sampler::DpmppTwoMSde(mut o) | Sampler::DpmppThreeMSde(mut o) => {
                o.eta = self.eta.unwrap_or(o.eta);
                o.s_noise = self.s_noise.unwrap_or(o.s_noise);
                o.exact_phi3 = self.exact_phi3;
                if name == "dpmpp-2m-sde" {
                    Sampler::DpmppTwoMSde(o)
                } else {
                    Sampler::DpmppThreeMSde(o)
                }
            }
            Sampler::UniPc(mut o) => {
                o.order = self.order.unwrap_or(o.order);
                if !(1..=3).contains(&o.order) {
                    bail!(
                        "--order: UniPC's predictor order is 1, 2 or 3, got {}",
                        o.order
                    );
                }
                o.corrector = !self.no_corrector;
                o.bh2 = !self.bh1;
                Sampler::UniPc(o)
            }
            other => other,
        })
    }
}

pub(crate) fn sampler_from(name: &str, seed: u64, opts: &SamplerOpts) -> Result<Sampler> {
    opts.build(name, seed)
}

pub(crate) fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    bar_of(len, what, "steps")
}

/// A progress bar counting `unit`s.
pub(crate) fn bar_of(len: u64, what: &str, unit: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{elapsed}}  eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    b
}

pub(crate) fn load_images(name: &str, dir: Option<&Path>) -> Result<ImageDataset> {
    Ok(match name {
        "fashion-mnist" => ImageDataset::fashion_mnist(dir, Split::Train)
            .context("the Fashion-MNIST training split is not shipped: `apt-get install dataset-fashion-mnist` or pass --data-dir; `--data fashion-mnist-test` uses the shipped 10 000 images")?,
        "fashion-mnist-test" => ImageDataset::fashion_mnist(dir, Split::Test)?,
        other => bail!("--data: unknown data set '{other}'"),
    })
}

/// A setting that `--resume` cannot change: error when the flag was given with a value
/// other than the checkpoint's.
pub(crate) fn fixed_on_resume<T: PartialEq + std::fmt::Display>(
    flag: &str,
    given: Option<T>,
    stored: T,
    ck: &Path,
) -> Result<T> {
    match given {
        Some(g) if g != stored => bail!(
            "{flag} {g}: {} was trained with {stored}, and --resume cannot change it (start a new run in another --out, or --overwrite)",
            ck.display()
        ),
        _ => Ok(stored),
    }
}

/// Refuse to train over an existing run unless --resume or --overwrite says what to do;
/// with --overwrite, remove the old checkpoint and log first.
pub(crate) fn guard_existing_run(
    resume: bool,
    overwrite: bool,
    out: &Path,
    ck_path: &Path,
) -> Result<()> {
    if resume || !ck_path.exists() {
        return Ok(());
    }
    if !overwrite {
        let step = CheckpointFile::read(ck_path)
            .map(|ck| format!("a checkpoint of step {}", ck.meta.step))
            .unwrap_or_else(|_| "a checkpoint".into());
        bail!(
            "{}: {step} is already there: pass --resume to continue that run or --overwrite to replace it",
            ck_path.display()
        );
    }
    for p in [ck_path.to_path_buf(), out.join("train.jsonl")] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn initial_noise(
    path: Option<&Path>,
    shape: &[usize],
    seed: u64,
    dev: &Device,
) -> Result<Vec<f32>> {
    let n = score_core::limits::element_count("--n", shape)?;
    match path {
        Some(p) => {
            let arr = read_npy_finite(p)?;
            if arr.data.len() != n {
                bail!(
                    "{}: noise has shape {:?} ({} values), expected {:?}",
                    p.display(),
                    arr.shape,
                    arr.data.len(),
                    shape
                );
            }
            Ok(arr.data.iter().map(|&v| v as f32).collect())
        }
        None => {
            let mut rng = stream_rng(seed, 0x4e4f_4953, 0);
            Ok(to_vec_f32(randn([n], &mut rng, dev))?)
        }
    }
}
