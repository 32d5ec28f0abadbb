//! `scorelab fid` and `scorelab fid-stats`: the flags as `scorelab_run::fid`'s
//! specification, the report printed.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use scorelab_run::fid::{FidSpec, ImageOpts};

use crate::common::{Common, device, emit, ensure_not_input};
use crate::feedback::Bars;

/// Where a set of images comes from, and how to read `.npy` values.
#[derive(Args, Clone)]
pub(crate) struct ImageArgs {
    /// Value range of `.npy` inputs: `signed` ([−1, 1], what `scorelab sample` writes),
    /// `unit` ([0, 1]) or `byte` ([0, 255]). PNGs are always 8-bit.
    #[arg(long, default_value = "signed")]
    range: String,
    /// Use only the first N images of each set.
    #[arg(long)]
    limit: Option<usize>,
    /// Images per network batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Converted Inception weights [default: `cargo xtask fid-setup`'s output].
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl ImageArgs {
    fn opts(&self) -> ImageOpts {
        ImageOpts {
            range: self.range.clone(),
            limit: self.limit,
            batch: self.batch,
            weights: self.weights.clone(),
        }
    }
}

#[derive(Args)]
pub(crate) struct FidArgs {
    /// Images to score: a `.npy` array `[n, h, w]` or `[n, c, h, w]` (c = 1 or 3), a
    /// folder of PNGs, or `fashion-mnist-test` (the shipped test split).
    #[arg(long, required_unless_present = "checkpoint")]
    images: Option<String>,
    /// Or sample the images from this checkpoint (Heun, Karras grid, seed `--seed`).
    #[arg(long, conflicts_with = "images")]
    checkpoint: Option<PathBuf>,
    /// Images to sample with `--checkpoint` [default: 1000].
    #[arg(long)]
    n: Option<usize>,
    /// σ levels of the sampler with `--checkpoint` [default: 18].
    #[arg(long)]
    steps: Option<usize>,
    /// Reference: images (as `--images`) or statistics (`.npz` with `mu`, `sigma`).
    #[arg(long = "ref")]
    reference: String,
    /// Also report KID (needs reference images, not statistics).
    #[arg(long)]
    kid: bool,
    /// Also report improved precision and recall, k = 3 (needs reference images), on
    /// the FID Inception-v3 pool3 features; Kynkäänniemi et al. and torch-fidelity use
    /// VGG-16 fc2 features, so the values are not comparable with theirs.
    #[arg(long)]
    pr: bool,
    /// Bootstrap resamples of the scored set for FID's interval (0: none) [default: 200].
    #[arg(long)]
    bootstrap: Option<usize>,
    #[command(flatten)]
    opts: ImageArgs,
}

#[derive(Args)]
pub(crate) struct FidStatsArgs {
    /// Images (as `scorelab fid --images`).
    #[arg(long)]
    images: String,
    /// Output `.npz` (pytorch-fid's `mu`/`sigma`, float64, plus `n`).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    opts: ImageArgs,
}

pub(crate) fn run_fid(c: &Common, a: &FidArgs) -> Result<()> {
    let spec = FidSpec {
        images: a.images.clone(),
        checkpoint: a.checkpoint.clone(),
        n: a.n,
        steps: a.steps,
        reference: a.reference.clone(),
        kid: a.kid,
        pr: a.pr,
        bootstrap: a.bootstrap,
        opts: a.opts.opts(),
        seed: c.seed(),
    };
    let r = scorelab_run::fid::fid(&spec, &device(&c.device)?, &Bars::new(c.json, "images"))?;
    let shown = r.clone();
    emit(c.json, r, || print_fid(&shown));
    Ok(())
}

/// The FID report as text.
fn print_fid(r: &serde_json::Value) {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let name = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    if r["statistics"] == true {
        outln!(
            "FID        {:.3} (two statistics files: no bootstrap)",
            num(&r["fid"])
        );
        outln!("images     {} ({} images)", name(&r["images"]), r["n"]);
        outln!("reference  {} ({} images)", name(&r["ref"]), r["n_ref"]);
        return;
    }
    outln!(
        "FID        {:.3} ± {:.3} (bootstrap standard error over the scored set, {} resamples)",
        num(&r["fid"]),
        num(&r["bootstrap"]["std_error"]),
        r["bootstrap"]["resamples"]
    );
    outln!(
        "images     {} ({} images)",
        r["images"].as_str().unwrap_or(""),
        r["n"]
    );
    outln!(
        "reference  {} ({} images)",
        r["ref"].as_str().unwrap_or(""),
        r["n_ref"]
    );
    if let Some(k) = r.get("kid") {
        outln!(
            "KID        {:.5} ± {:.5} ({} subsets of {})",
            k["mean"].as_f64().unwrap_or(f64::NAN),
            k["std"].as_f64().unwrap_or(f64::NAN),
            k["subsets"],
            k["subset_size"]
        );
    }
    if let (Some(p), Some(rc)) = (r.get("precision"), r.get("recall")) {
        outln!(
            "precision  {:.4}   recall {:.4}   (k = 3, on Inception pool3 features, not the paper's VGG-16)",
            p.as_f64().unwrap_or(f64::NAN),
            rc.as_f64().unwrap_or(f64::NAN)
        );
    }
    outln!(
        "features   {:.1} images/s",
        r["images_per_second"].as_f64().unwrap_or(f64::NAN)
    );
}

pub(crate) fn run_fid_stats(c: &Common, a: &FidStatsArgs) -> Result<()> {
    ensure_not_input(&a.out, "--out", &[(Path::new(&a.images), "--images")])?;
    let dev = device(&c.device)?;
    let r = scorelab_run::fid::fid_stats(
        &a.images,
        &a.out,
        &a.opts.opts(),
        &dev,
        &Bars::new(c.json, "images"),
    )?;
    let shown = r.clone();
    emit(c.json, r, || {
        outln!(
            "wrote {} ({} images of {})",
            a.out.display(),
            shown["n"],
            shown["images"].as_str().unwrap_or("")
        )
    });
    Ok(())
}
