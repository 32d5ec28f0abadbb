//! What every command shares: the global flags, the device, output (JSON or text),
//! progress bars, the sampler flags, the run-folder guard and the starting noise.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;
use score_core::samplers::Sampler;
use score_core::samplers::{GivenOptions, OPTIONS, OptionKind, OptionValue};
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_io::images::{ImageDataset, Split};
use score_io::npy::read_npy_finite;
use score_train::run::{RunDir, RunMode};
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

/// The sampler options, as flags generated from score-core's option table
/// ([`score_core::samplers::OPTIONS`]): each flag, its kind and help come from there,
/// and [`Sampler::build`] checks which sampler takes which.
#[derive(Debug, Clone, Default)]
pub(crate) struct SamplerOpts(GivenOptions);

impl clap::FromArgMatches for SamplerOpts {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let mut given = Vec::new();
        for o in OPTIONS {
            let id = o.name();
            let value = match o.kind {
                OptionKind::Number => m.get_one::<f64>(id).map(|v| OptionValue::Number(*v)),
                OptionKind::Count => m.get_one::<usize>(id).map(|v| OptionValue::Count(*v)),
                OptionKind::Switch => m.get_flag(id).then_some(OptionValue::Switch),
                OptionKind::File => m
                    .get_one::<PathBuf>(id)
                    .map(|p| OptionValue::File(p.clone())),
            };
            given.extend(value.map(|v| (o.flag, v)));
        }
        Ok(Self(GivenOptions(given)))
    }

    fn update_from_arg_matches(
        &mut self,
        m: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for SamplerOpts {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        OPTIONS.iter().fold(cmd, |cmd, o| {
            let arg = clap::Arg::new(o.name()).long(o.name()).help(o.help);
            cmd.arg(match o.kind {
                OptionKind::Number => arg.value_parser(clap::value_parser!(f64)),
                OptionKind::Count => arg.value_parser(clap::value_parser!(usize)),
                OptionKind::Switch => arg.action(clap::ArgAction::SetTrue),
                OptionKind::File => arg.value_parser(clap::value_parser!(PathBuf)),
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl SamplerOpts {
    /// The `--ems` file, when given.
    pub(crate) fn ems_path(&self) -> Option<&std::path::Path> {
        match self.0.get("--ems") {
            Some(OptionValue::File(p)) => Some(p.as_path()),
            _ => None,
        }
    }
}

/// The sampler `name` with the options given on the command line and `seed`.
pub(crate) fn sampler_from(name: &str, seed: u64, opts: &SamplerOpts) -> Result<Sampler> {
    Ok(Sampler::build(name, seed, &opts.0)?)
}

pub(crate) fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    bar_of(len, what, "steps")
}

/// A progress bar counting `unit`s.
pub(crate) fn bar_of(len: u64, what: &str, unit: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::with_draw_target(Some(len), score_train::fit::draw_target());
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
            .context("the Fashion-MNIST training split is not shipped: `cargo xtask fashion-mnist-setup` (Debian's package, unpacked into the cache), `apt-get install dataset-fashion-mnist`, or --data-dir; `--data fashion-mnist-test` uses the shipped 10 000 images")?,
        "fashion-mnist-test" => ImageDataset::fashion_mnist(dir, Split::Test)?,
        other => {
            let p = Path::new(other);
            if p.is_dir() {
                ImageDataset::from_folder(p)?
            } else if other.ends_with(".npy") {
                ImageDataset::from_npy(score_io::npy::read_npy(p)?, p)?
            } else if other.ends_with(".npz") {
                ImageDataset::from_npy(score_eval::fid::archive::npz_image_array(p)?, p)?
            } else {
                bail!(
                    "--data {other}: not a data set name (fashion-mnist, fashion-mnist-test), a folder of PNG/JPEG images or a .npy/.npz image array"
                )
            }
        }
    })
}

pub(crate) use score_train::run::fixed_on_resume;

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

/// A run folder for `train` and `musicscore train` (`score_train::run::RunDir`).
pub(crate) fn open_run(out: &Path, resume: bool, overwrite: bool) -> Result<RunDir> {
    Ok(RunDir::open(out, RunMode::from_flags(resume, overwrite))?)
}

/// Refuse `--n 0` and a sample count whose working memory exceeds the machine's
/// (an estimate: the sampler's states, and the network's activations at full
/// resolution, about 24 maps of the widest level live at once, plus attention).
pub(crate) fn ensure_sampling_fits(
    model: &score_train::pipeline::LoadedModel,
    n: usize,
) -> Result<()> {
    if n == 0 {
        bail!("--n: need at least one sample");
    }
    ensure_passes_fit(model, n as u128, "--n", "use a smaller --n")
}

/// Refuse `n` image-sized network passes whose working memory exceeds the budget (the
/// estimate of [`ensure_sampling_fits`]), naming `flag`.
pub(crate) use score_nn::unet::pass_bytes as unet_pass_bytes;

pub(crate) fn ensure_passes_fit(
    model: &score_train::pipeline::LoadedModel,
    n: u128,
    flag: &str,
    hint: &str,
) -> Result<()> {
    let bytes = match model {
        score_train::pipeline::LoadedModel::Unet(net, chw) => {
            n.saturating_mul(unet_pass_bytes(*chw, net.widest_channels()))
        }
        score_train::pipeline::LoadedModel::Mlp(_, d) => {
            n.saturating_mul(8 * 4 * (*d as u128).max(256))
        }
    };
    score_core::limits::ensure_fits(flag, bytes, hint)?;
    Ok(())
}
