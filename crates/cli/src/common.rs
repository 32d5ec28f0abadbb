//! What every command shares: the global flags, the device, output (JSON or text),
//! progress bars, the sampler flags, the run-folder guard and the starting noise.

use anyhow::Result;
use burn::tensor::Device;
use clap::Args;
pub(crate) use score_core::fs::ensure_not_input;
use score_core::samplers::Sampler;
use score_core::samplers::{GivenOptions, OPTIONS, OptionKind, OptionValue};
use std::path::PathBuf;

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

impl SamplerOpts {
    /// Whether no sampler option was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }
}

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

pub(crate) use scorelab_run::train_data::load_images;

pub(crate) use scorelab_run::spec::initial_noise;

pub(crate) use score_train::pipeline::{ensure_passes_fit, ensure_sampling_fits};

/// A spinner with a message and the elapsed time (none with `--json`).
pub(crate) fn spinner(json: bool, what: String) -> Option<indicatif::ProgressBar> {
    if json {
        return None;
    }
    let b = indicatif::ProgressBar::with_draw_target(None, score_train::fit::draw_target());
    b.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .expect("valid template"),
    );
    b.set_message(what);
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(b)
}
