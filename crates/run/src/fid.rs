//! FID (with a bootstrap standard error), KID and improved precision/recall on the FID
//! Inception-v3 features, as `scorelab fid` and `scorelab fid-stats` compute them: images
//! from an array, a folder, a named set or a checkpoint's samples, against images or
//! statistics; the demo's held-out reference, cached.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use score_eval::fid::{self, DIM, FeatureStats, FidInception, FidReference};
use score_io::images::{ImageDataset, Split};
use score_io::npy::read_npy_finite;

use crate::error::{Result, bail};

/// What long FID work reports: steps of a named stage, and lines worth telling. Both do
/// nothing by default.
pub trait Progress {
    /// `done` of `total` items of `what` (`done == total` ends the stage).
    fn step(&self, _what: &str, _done: u64, _total: u64) {}
    /// A line about the work.
    fn note(&self, _line: &str) {}
}

/// Progress that reports nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// How a set of images is read and scored.
#[derive(Debug, Clone)]
pub struct ImageOpts {
    /// Value range of `.npy` inputs: `signed` ([−1, 1], what `scorelab sample` writes),
    /// `unit` ([0, 1]) or `byte` ([0, 255]). PNGs are always 8-bit.
    pub range: String,
    /// Use only the first N images of each set.
    pub limit: Option<usize>,
    /// Images per network batch.
    pub batch: usize,
    /// Converted Inception weights [`cargo xtask fid-setup`'s output].
    pub weights: Option<PathBuf>,
}

impl Default for ImageOpts {
    fn default() -> Self {
        Self {
            range: "signed".into(),
            limit: None,
            batch: 16,
            weights: None,
        }
    }
}

/// What `fid` scores and against what.
#[derive(Debug, Clone)]
pub struct FidSpec {
    /// Images to score: a `.npy`/`.npz` array, a folder of images, a named set, or a
    /// statistics `.npz` (then the reference must be statistics too).
    pub images: Option<String>,
    /// Or sample the images from this checkpoint (Heun, Karras grid, seed `seed`).
    pub checkpoint: Option<PathBuf>,
    /// Images to sample from the checkpoint [1000; only with `checkpoint`].
    pub n: Option<usize>,
    /// σ levels of the sampler [18; only with `checkpoint`].
    pub steps: Option<usize>,
    /// The reference: images (as `images`) or statistics (`.npz` with `mu`, `sigma`).
    pub reference: String,
    /// Also KID (needs reference images).
    pub kid: bool,
    /// Also improved precision and recall, k = 3 (needs reference images).
    pub pr: bool,
    /// Bootstrap resamples of the scored set (0: none) [200; not for two statistics
    /// files].
    pub bootstrap: Option<usize>,
    /// Reading and batching.
    pub opts: ImageOpts,
    /// Seed of the samples and the bootstrap.
    pub seed: u64,
}

/// 8-bit images `[n, c, h, w]` and where they came from.
pub(crate) struct ImageSet {
    bytes: Vec<u8>,
    shape: [usize; 4],
    source: String,
}

fn limit(mut set: ImageSet, limit: Option<usize>) -> ImageSet {
    if let Some(l) = limit.filter(|&l| l < set.shape[0]) {
        let per = set.shape[1] * set.shape[2] * set.shape[3];
        set.bytes.truncate(l * per);
        set.shape[0] = l;
        set.source = format!("{} (first {l})", set.source);
    }
    set
}

fn from_npy(path: &Path, range: &str) -> Result<ImageSet> {
    let a = read_npy_finite(path)?;
    let shape = match a.shape[..] {
        [n, h, w] => [n, 1, h, w],
        [n, c, h, w] if c == 1 || c == 3 => [n, c, h, w],
        _ => bail!(
            "{}: shape {:?}: expected [n, h, w] or [n, c, h, w] with c = 1 or 3",
            path.display(),
            a.shape
        ),
    };
    let bytes = match range {
        "signed" => {
            let v: Vec<f32> = a.data.iter().map(|&x| x as f32).collect();
            fid::quantize_signed(&v)?
        }
        "unit" => a
            .data
            .iter()
            .map(|&x| (x * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8)
            .collect(),
        "byte" => a
            .data
            .iter()
            .map(|&x| x.round().clamp(0.0, 255.0) as u8)
            .collect(),
        other => bail!("--range {other}: expected signed, unit or byte"),
    };
    Ok(ImageSet {
        bytes,
        shape,
        source: path.display().to_string(),
    })
}

/// An `.npz` image array (`arr_0`, as ADM's and EDM's sample scripts write; layout and
/// value range detected as for `train --data`).
fn from_npz_images(path: &Path) -> Result<ImageSet> {
    let arr = fid::archive::npz_image_array(path)?;
    let d = ImageDataset::from_npy(arr, path)?;
    let [c, h, w] = d.image_shape;
    Ok(ImageSet {
        bytes: fid::quantize_signed(&d.pixels)?,
        shape: [d.num_images(), c, h, w],
        source: d.source,
    })
}

/// Whether an `.npz` holds FID statistics (`mu`, `sigma`) rather than images. One that
/// cannot be read counts as statistics (what `.npz` meant before image arrays were
/// read): the flag checks come first and reading it then names what is wrong.
fn npz_is_stats(path: &str) -> bool {
    path.ends_with(".npz")
        && fid::archive::npz_keys(Path::new(path)).map_or(true, |k| k.iter().any(|k| k == "mu"))
}

/// A folder of PNG/JPEG images, found recursively (`score_io::folder`).
fn from_folder(dir: &Path) -> Result<ImageSet> {
    let d = ImageDataset::from_folder(dir)?;
    let [c, h, w] = d.image_shape;
    Ok(ImageSet {
        bytes: fid::quantize_signed(&d.pixels)?,
        shape: [d.num_images(), c, h, w],
        source: d.source,
    })
}

fn load_set(spec: &str, o: &ImageOpts) -> Result<ImageSet> {
    let set = if let Some(d) = named_set(spec)? {
        let [c, h, w] = d.image_shape;
        ImageSet {
            bytes: fid::quantize_signed(&d.pixels)?,
            shape: [d.num_images(), c, h, w],
            source: spec.into(),
        }
    } else {
        let p = Path::new(spec);
        if p.is_dir() {
            from_folder(p)?
        } else if p.extension().is_some_and(|e| e == "npy") {
            from_npy(p, &o.range)?
        } else if p.extension().is_some_and(|e| e == "npz") {
            from_npz_images(p)?
        } else {
            bail!(
                "{spec}: expected a .npy or .npz image array, a folder of PNG/JPEG images, fashion-mnist-test or fashion-mnist-heldout"
            );
        }
    };
    let set = limit(set, o.limit);
    if set.shape[0] < 2 {
        bail!(
            "{}: {} images; FID needs at least 2",
            set.source,
            set.shape[0]
        );
    }
    Ok(set)
}

/// The image sets `--ref` and `--images` take by name: `fashion-mnist-test` (the 10 000
/// shipped test images) and `fashion-mnist-heldout` (the demo's 1 000 held-out
/// training images, whose statistics the demo caches).
fn named_set(spec: &str) -> Result<Option<ImageDataset>> {
    Ok(match spec {
        "fashion-mnist-test" => Some(ImageDataset::fashion_mnist(None, Split::Test)?),
        "fashion-mnist-heldout" => Some(score_train::pipeline::demo_split()?.1),
        _ => None,
    })
}

/// The FID network: `--weights` as given (checked against a sha256 marker beside it
/// when there is one), or the installed weights, whose marker must be there.
fn load_net(o: &ImageOpts, dev: &Device) -> Result<FidInception> {
    Ok(match &o.weights {
        Some(path) => FidInception::load(path, dev)?,
        None => FidInception::load_default(dev)?,
    })
}

/// Inception features of a set, reported to `p` as the stage `inception`.
fn features(
    net: &FidInception,
    set: &ImageSet,
    batch: usize,
    p: &dyn Progress,
) -> Result<Vec<f32>> {
    if set.shape[0] < 2 {
        bail!(
            "{}: {} images; FID needs at least 2",
            set.source,
            set.shape[0]
        );
    }
    score_core::limits::ensure_fits(
        "--batch",
        (batch as u128) * 3 * 299 * 299 * 4 * 40,
        "use a smaller --batch",
    )?;
    let n = set.shape[0] as u64;
    let f = net.features(&set.bytes, set.shape, batch, |done| {
        p.step("inception", done as u64, n)
    });
    p.step("inception", n, n);
    Ok(f?)
}

/// Sample `n` images from a UNet checkpoint with Heun on the Karras grid, 64 at a time.
fn sample_set(
    ck: &Path,
    n: usize,
    steps: usize,
    seed: u64,
    p: &dyn Progress,
    dev: &Device,
) -> Result<ImageSet> {
    let (net, [c, h, w], precond, _) = score_train::pipeline::load_image_net(ck, dev)?;
    // Each image is held as float32 and as bytes, then as 2048 float64 features.
    score_core::limits::ensure_values_fit(
        "--n",
        n as u128,
        (c * h * w * 5 + DIM * 8) as u128,
        "use a smaller --n, or write the images with `scorelab sample --batch` and give the folder to --images",
    )?;
    let x = score_train::pipeline::heun_samples(
        &net,
        precond,
        [c, h, w],
        n,
        steps,
        (seed, 0x4649_4453),
        dev,
        |done| p.step("sampling", done as u64, n as u64),
    )?;
    p.step("sampling", n as u64, n as u64);
    let bytes = fid::quantize_signed(&x)?;
    Ok(ImageSet {
        bytes,
        shape: [n, c, h, w],
        source: format!(
            "{} ({n} Heun samples, {steps} levels, seed {seed})",
            ck.display()
        ),
    })
}

/// `fid --images A.npz --ref B.npz`: FID between two statistics files, as pytorch-fid
/// compares two `.npz` files; no network is involved.
fn fid_of_two_stats(a: &FidSpec, images: &str) -> Result<serde_json::Value> {
    if !npz_is_stats(&a.reference) {
        bail!(
            "--images {images}: statistics compare only with statistics: give --ref a statistics .npz (mu, sigma) too"
        );
    }
    if a.kid || a.pr {
        bail!("--kid and --pr compare features, which statistics files do not hold");
    }
    if a.bootstrap.is_some() {
        bail!("--bootstrap resamples features, which statistics files do not hold");
    }
    let (x, r) = (
        FeatureStats::load_npz(Path::new(images))?,
        FeatureStats::load_npz(Path::new(&a.reference))?,
    );
    let fid = score_eval::fid::stats::fid_from_stats(&x, &r)?;
    if !fid.is_finite() {
        bail!("FID of {images} against {} is {fid}", a.reference);
    }
    Ok(
        serde_json::json!({"images": images, "ref": a.reference, "fid": fid, "n": x.n, "n_ref": r.n, "statistics": true}),
    )
}

/// The reference's statistics (and features, when KID or P&R need them) and its name:
/// given as `.npz`, computed from images, or a named set's cached statistics.
fn reference(
    p: &dyn Progress,
    a: &FidSpec,
    ref_stats: Option<FeatureStats>,
    ref_set: Option<ImageSet>,
    net: &FidInception,
) -> Result<(FeatureStats, Option<Vec<f32>>, String)> {
    Ok(match (ref_stats, ref_set) {
        (Some(s), _) => (s, None, a.reference.clone()),
        (None, Some(r)) => {
            let rf = features(net, &r, a.opts.batch, p)?;
            (FeatureStats::from_features(&rf, DIM)?, Some(rf), r.source)
        }
        // A named set whose statistics are cached: the shipped test split (`cargo
        // xtask fid-ref`) or the demo's held-out images.
        (None, None) => {
            let stats = match a.reference.as_str() {
                "fashion-mnist-heldout" => {
                    heldout_stats(net, &score_train::pipeline::demo_split()?.1, p)?
                }
                _ => test_split_stats(net, a.opts.batch, p)?,
            };
            (stats, None, a.reference.clone())
        }
    })
}

/// The most bootstrap resamples `fid` takes.
const MAX_BOOTSTRAP: usize = 10_000;

/// The settings of `fid` that cannot work, refused before any input is read; the
/// bootstrap's resample count.
fn check_settings(a: &FidSpec, is_stats: bool) -> Result<usize> {
    if is_stats && (a.kid || a.pr) {
        bail!(
            "--kid and --pr compare features: give --ref images, not statistics ({})",
            a.reference
        );
    }
    if a.opts.batch == 0 {
        bail!("--batch: must be at least 1");
    }
    // The bootstrap's own relative error is about 1/√(2B): 0.7 % at 10 000 resamples;
    // more only costs time (each resample is an eigendecomposition).
    let bootstrap = a.bootstrap.unwrap_or(200);
    if bootstrap > MAX_BOOTSTRAP {
        bail!(
            "--bootstrap {bootstrap}: at most {MAX_BOOTSTRAP} (the standard error is then known to 0.7 %)"
        );
    }
    if a.checkpoint.is_none() && (a.n.is_some() || a.steps.is_some()) {
        bail!(
            "--n/--steps: they size the samples of --checkpoint; with --images they do not apply"
        );
    }
    Ok(bootstrap)
}

/// FID of the images (or samples) of `a` against its reference, with a bootstrap
/// interval, and KID and precision/recall when asked: the report as `scorelab fid
/// --json` prints it.
pub fn fid(a: &FidSpec, dev: &Device, p: &dyn Progress) -> Result<serde_json::Value> {
    if let Some(images) = a.images.as_deref()
        && npz_is_stats(images)
    {
        return fid_of_two_stats(a, images);
    }
    let t0 = Instant::now();
    let is_stats = npz_is_stats(&a.reference);
    let bootstrap = check_settings(a, is_stats)?;
    // Read every input before the network and before minutes of features, so that a
    // bad --ref or --images fails at once.
    let cached_test = matches!(
        a.reference.as_str(),
        "fashion-mnist-test" | "fashion-mnist-heldout"
    ) && a.opts.limit.is_none()
        && !a.kid
        && !a.pr;
    let (ref_stats, ref_set) = if is_stats {
        (Some(FeatureStats::load_npz(Path::new(&a.reference))?), None)
    } else if cached_test {
        (None, None)
    } else {
        (None, Some(load_set(&a.reference, &a.opts)?))
    };
    let images = a
        .images
        .as_deref()
        .map(|spec| load_set(spec, &a.opts))
        .transpose()?;
    let net = load_net(&a.opts, dev)?;
    let (ref_stats, ref_feats, ref_source) = reference(p, a, ref_stats, ref_set, &net)?;
    let set = match (images, &a.checkpoint) {
        (Some(set), _) => set,
        (None, Some(ck)) => {
            let (n, steps) = (a.n.unwrap_or(1000), a.steps.unwrap_or(18));
            sample_set(ck, n, steps, a.seed, p, dev)?
        }
        (None, None) => bail!("give --images or --checkpoint"),
    };
    let tf = Instant::now();
    let f = features(&net, &set, a.opts.batch, p)?;
    let feature_secs = tf.elapsed().as_secs_f64();
    if ref_stats.dim() != DIM {
        bail!(
            "{}: statistics of dimension {}, expected {DIM}",
            a.reference,
            ref_stats.dim()
        );
    }
    let est = FidReference::new(ref_stats)?.estimate(&f, bootstrap, a.seed)?;
    let mut report = serde_json::json!({
        "images": set.source, "ref": ref_source, "fid": est.fid, "n": est.n, "n_ref": est.n_ref,
        "bootstrap": {"resamples": est.resamples, "std_error": est.std_error, "interval95": [est.interval.0, est.interval.1]},
        "feature_seconds": feature_secs, "images_per_second": set.shape[0] as f64 / feature_secs,
    });
    if let Some(rf) = &ref_feats {
        add_kid_pr(a, &f, rf, (est.n, est.n_ref), a.seed, &mut report)?;
    }
    report["seconds"] = t0.elapsed().as_secs_f64().into();
    Ok(report)
}

/// With `--kid` and `--pr`, KID (subsets of min(1000, n, n_ref)) and improved
/// precision/recall (k = 3) of the features `f` against the reference's `rf`, into
/// `report`; `n` is (n, n_ref).
fn add_kid_pr(
    a: &FidSpec,
    f: &[f32],
    rf: &[f32],
    n: (usize, usize),
    seed: u64,
    report: &mut serde_json::Value,
) -> Result<()> {
    if a.kid {
        let size = 1000.min(n.0).min(n.1);
        let (m, s) = fid::kid(f, rf, DIM, 100, size, seed)?;
        report["kid"] =
            serde_json::json!({"mean": m, "std": s, "subsets": 100, "subset_size": size});
    }
    if a.pr {
        let (p, r) = fid::precision_recall(rf, f, DIM, 3)?;
        report["precision"] = p.into();
        report["precision_recall_features"] = "inception-v3 pool3 (2048), not VGG-16 fc2".into();
        report["recall"] = r.into();
    }
    Ok(())
}

/// FID statistics of the 10 000 shipped Fashion-MNIST test images, cached after the
/// first call (`cargo xtask fid-ref` makes them ahead of time).
fn test_split_stats(net: &FidInception, batch: usize, p: &dyn Progress) -> Result<FeatureStats> {
    let what = "inception (test split, once)";
    let s = score_train::pipeline::test_split_fid_stats(net, batch, |done| {
        p.step(what, done as u64, 10_000)
    })?;
    p.step(what, 10_000, 10_000);
    Ok(s)
}

/// FID statistics (`mu`, `sigma`, `n`) of `images` written to `out` as pytorch-fid's
/// `.npz`: the report (`images`, `n`, `out`).
pub fn fid_stats(
    images: &str,
    out: &Path,
    opts: &ImageOpts,
    dev: &Device,
    p: &dyn Progress,
) -> Result<serde_json::Value> {
    if opts.batch == 0 {
        bail!("--batch: must be at least 1");
    }
    let set = load_set(images, opts)?;
    let net = load_net(opts, dev)?;
    let f = features(&net, &set, opts.batch, p)?;
    let stats = FeatureStats::from_features(&f, DIM)?;
    stats.save_npz(out)?;
    Ok(serde_json::json!({"images": set.source, "n": stats.n, "out": out}))
}

/// FID statistics of the demo's 1 000 held-out images, computed once and cached as
/// `<cache>/fid/stats/fashion-mnist-heldout-1000.npz`.
pub fn heldout_stats(
    net: &FidInception,
    held: &ImageDataset,
    p: &dyn Progress,
) -> Result<FeatureStats> {
    let [c, h, w] = held.image_shape;
    let set = ImageSet {
        bytes: fid::quantize_signed(&held.pixels)?,
        shape: [held.num_images(), c, h, w],
        source: "held-out".into(),
    };
    let key = net.content_key(&set.bytes, set.shape);
    score_train::pipeline::cached_fid_stats(
        "fashion-mnist-heldout-1000",
        &key,
        || -> Result<Vec<f32>> {
            p.note("FID reference: Inception features of the 1 000 held-out images, once (cached)");
            features(net, &set, 16, p)
        },
    )
}

/// The demo's FID: its samples against the 1 000 held-out images (statistics cached
/// after the first run), beside the same number of real training images against the
/// same reference (FID's floor at that sample size). `Ok(None)` with a message when the
/// weights are not set up, so that the rest of the demo still reports.
pub fn demo_fid(
    samples: &[f32],
    shape: [usize; 4],
    train: &ImageDataset,
    held: &ImageDataset,
    p: &dyn Progress,
    dev: &Device,
) -> Result<serde_json::Value> {
    let net = match FidInception::load_default(dev) {
        Ok(n) => n,
        Err(e @ score_core::ScoreError::MissingArtifact { .. }) => {
            return Ok(serde_json::json!({ "skipped": e.to_string() }));
        }
        Err(e) => return Err(e.into()),
    };
    let batch = 16;
    let as_set = |d: &ImageDataset, source: &str| -> Result<ImageSet> {
        let [c, h, w] = d.image_shape;
        Ok(ImageSet {
            bytes: fid::quantize_signed(&d.pixels)?,
            shape: [d.num_images(), c, h, w],
            source: source.into(),
        })
    };
    let stats = heldout_stats(&net, held, p)?;
    let reference = FidReference::new(stats)?;
    let n = shape[0];
    let generated = ImageSet {
        bytes: fid::quantize_signed(samples)?,
        shape,
        source: "samples".into(),
    };
    let est = reference.estimate(&features(&net, &generated, batch, p)?, 200, 0)?;
    let real = as_set(&train.balanced_subset(n), "train")?;
    let floor = reference.estimate(&features(&net, &real, batch, p)?, 200, 0)?;
    Ok(serde_json::json!({ "fid": est, "real_floor": floor }))
}
