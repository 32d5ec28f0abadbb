//! `scorelab scoreaug measure`: the ScoreAug study's measures of one trained model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use score_eval::fid::{FidInception, FidReference};
use score_io::images::ImageDataset;
use score_train::pipeline;
use scoreaug::measures::{self, MeasureOptions, Model};
use scoreaug::transforms::Kind;

use crate::common::{Common, device, emit};
use score_train::train::RunConfig;
use scorelab_run::record::CliExtra;

#[derive(Subcommand)]
pub(crate) enum ScoreAugCmd {
    /// Equivariance error, train vs held-out loss, leakage, memorisation (and FID) of a
    /// checkpoint written by `scorelab train` (any --augment, none included).
    Measure(MeasureArgs),
}

#[derive(Args)]
pub(crate) struct MeasureArgs {
    /// Checkpoint written by `scorelab train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Held-out images: `fashion-mnist-heldout` (the shipped test images 9 000–9 999,
    /// disjoint from `--subset` training sets of up to 9 000) or `fashion-mnist-test`.
    #[arg(long, default_value = "fashion-mnist-heldout")]
    data: String,
    /// Images per set for the equivariance error and the loss curves.
    #[arg(long, default_value_t = 256)]
    n_eval: usize,
    /// Samples for leakage, memorisation and FID.
    #[arg(long, default_value_t = 128)]
    n_samples: usize,
    /// Also FID of the samples against the 1 000 held-out images (needs
    /// `cargo xtask fid-setup`).
    #[arg(long)]
    fid: bool,
}

/// The training images of a `scorelab train` checkpoint (its data set and subset).
pub(crate) fn training_images(
    ck: &score_train::checkpoint::CheckpointFile,
) -> Result<ImageDataset> {
    let RunConfig {
        extra: CliExtra { cli },
        ..
    } = ck
        .meta
        .config_as::<RunConfig<CliExtra>>(&ck.path)
        .context("config.extra.cli: not written by `scorelab train`")?;
    let mut images = crate::common::load_images(&cli.data, None)?;
    if cli.subset > 0 {
        images = images.balanced_subset(cli.subset);
    }
    Ok(images)
}

pub(crate) fn run(c: &Common, cmd: &ScoreAugCmd) -> Result<()> {
    let ScoreAugCmd::Measure(a) = cmd;
    let dev = device(&c.device)?;
    let t0 = Instant::now();
    let (net, _, precond, _) = pipeline::load_unet(&a.checkpoint, &dev)?;
    let ck = score_train::checkpoint::CheckpointFile::read(&a.checkpoint)?;
    let train = training_images(&ck)?;
    let held = match a.data.as_str() {
        "fashion-mnist-heldout" => pipeline::demo_split()?.1,
        other => crate::common::load_images(other, None)?,
    };
    let augment = scoreaug::Augment::from_config(&ck.meta.config);
    let kinds = augment
        .as_ref()
        .map_or(Kind::ALL.to_vec(), |g| g.scoreaug.kinds.clone());
    let model = Model {
        net: &net,
        precond,
        kinds,
        omega: scoreaug::objective::OmegaLayout::of(augment.as_ref()),
    };
    let opts = MeasureOptions {
        n_eval: a.n_eval,
        n_samples: a.n_samples,
        seed: c.seed(),
        ..MeasureOptions::default()
    };
    let fid_parts = if a.fid {
        let inception = FidInception::load_default(&dev)?;
        let stats = scorelab_run::fid::heldout_stats(
            &inception,
            &held,
            &crate::feedback::Bars::new(c.json, "images"),
        )?;
        Some((inception, FidReference::new(stats)?))
    } else {
        None
    };
    let report = measures::measure(
        &model,
        &train,
        &held,
        &opts,
        fid_parts.as_ref().map(|(n, r)| (n, r)),
        &dev,
    )?;
    let value = serde_json::json!({
        "checkpoint": a.checkpoint, "augment": augment, "train_images": train.num_images(),
        "heldout": a.data, "options": opts, "report": report, "seconds": t0.elapsed().as_secs_f64(),
    });
    emit(c.json, value, || {
        print_measures(&a.checkpoint, train.num_images(), &report)
    });
    Ok(())
}

/// `scoreaug measure`'s report as text.
fn print_measures(checkpoint: &std::path::Path, train_images: usize, report: &measures::Report) {
    outln!(
        "checkpoint       {} ({} training images)",
        checkpoint.display(),
        train_images
    );
    for r in &report.equivariance {
        outln!(
            "equivariance     {:?} σ={:<4} {:.4}",
            r.kind,
            r.sigma,
            r.error
        );
    }
    outln!("loss σ grid      {:?}", report.loss_sigmas);
    outln!("loss train       {:.4?}", report.loss_train);
    outln!("loss held-out    {:.4?}", report.loss_heldout);
    outln!(
        "relative gap     {:+.4} (mean over σ of (held-out − train)/train)",
        report.relative_gap
    );
    outln!(
        "leakage          {:.3} of {} samples {:?} (real held-out images: {:.3})",
        report.leakage_rate,
        report.n_samples,
        report.leakage_counts,
        report.leakage_real
    );
    outln!("memorisation     {:.3}", report.memorization_rate);
    if let Some(f) = &report.fid {
        outln!(
            "FID              {:.2} ± {:.2} ({} samples vs {} held-out)",
            f.fid,
            f.std_error,
            f.n,
            f.n_ref
        );
    }
}
