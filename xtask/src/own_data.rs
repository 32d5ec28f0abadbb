//! `cargo xtask fixture shapes` (a labelled folder of 64×64 RGB PNGs and the same images
//! as an `.npz` array) and `cargo xtask experiment own-data [--quick]`: train on the
//! folder class-conditionally and on the array, sample to folders, measure FID against
//! the training images beside a held-out real-vs-real floor (issue 28).

use anyhow::{Context, Result};
use score_core::burn::tensor::Device;
use score_core::samplers::{GivenOptions, Sampler};
use score_core::sigmas::GridKind;
use score_train::run::RunMode;
use scorelab_run::fid::FidSpec;
use scorelab_run::{GridSpec, SampleSpec, TrainSpec};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The fixture's classes, one sub-folder each.
pub const CLASSES: [&str; 2] = ["disc", "square"];

/// SplitMix64: the fixture's only source of randomness, so that a seed fixes the images.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A colour in [0, 255]³.
    fn colour(&mut self) -> [f64; 3] {
        [0; 3].map(|_| self.uniform(0.0, 255.0))
    }
}

/// One `size`×`size` RGB image (HWC bytes) of class `class`: a disc or a square of a
/// random colour, position and size on a vertical gradient between two random colours,
/// edges anti-aliased by pixel coverage.
fn shape_image(rng: &mut Rng, class: usize, size: usize) -> Vec<u8> {
    let (top, bottom, fg) = (rng.colour(), rng.colour(), rng.colour());
    let s = size as f64;
    let (cx, cy) = (rng.uniform(0.3 * s, 0.7 * s), rng.uniform(0.3 * s, 0.7 * s));
    let r = rng.uniform(0.12 * s, 0.28 * s);
    let mut px = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        let t = y as f64 / (s - 1.0);
        for x in 0..size {
            let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
            let cover = match class {
                0 => (r + 0.5 - dx.hypot(dy)).clamp(0.0, 1.0),
                _ => (r + 0.5 - dx.abs()).clamp(0.0, 1.0) * (r + 0.5 - dy.abs()).clamp(0.0, 1.0),
            };
            for c in 0..3 {
                let bg = top[c] + (bottom[c] - top[c]) * t;
                px.push((bg + (fg[c] - bg) * cover).round() as u8);
            }
        }
    }
    px
}

/// Write `n` images (classes alternating) as `out/<class>/NNNN.png` and all of them as
/// `out.npz` (`arr_0`, `[n, size, size, 3]`, float32 in [0, 255], as NumPy users hold
/// images). Returns the npz path.
pub fn shapes(out: &Path, n: usize, size: usize, seed: u64) -> Result<PathBuf> {
    let mut rng = Rng(seed);
    let mut all = Vec::with_capacity(n * size * size * 3);
    for i in 0..n {
        let class = i % CLASSES.len();
        let hwc = shape_image(&mut rng, class, size);
        let chw: Vec<f32> = (0..3)
            .flat_map(|c| (0..size * size).map(move |p| (c, p)))
            .map(|(c, p)| hwc[p * 3 + c] as f32 / 127.5 - 1.0)
            .collect();
        let dir = out.join(CLASSES[class]);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let png = score_io::image::image_png(&chw, [3, size, size])?;
        score_core::fs::write_atomic(&dir.join(format!("{i:04}.png")), &png)?;
        all.extend(hwc.iter().map(|&b| b as f32));
    }
    let npy = score_io::npy::npy_f32_bytes(&[n, size, size, 3], &all)?;
    let npz = out.with_extension("npz");
    let bytes = score_eval::fid::archive::write_stored(&[("arr_0.npy", &npy)]);
    score_core::fs::write_atomic(&npz, &bytes)?;
    Ok(npz)
}

/// The experiment's sizes: images, training steps (the labelled folder's run and the
/// array's), samples per class.
struct Plan {
    train_images: usize,
    heldout_images: usize,
    steps: usize,
    npz_steps: usize,
    samples: usize,
}

impl Plan {
    fn new(quick: bool, steps: Option<usize>) -> Self {
        match quick {
            true => Plan {
                train_images: 32,
                heldout_images: 16,
                steps: steps.unwrap_or(2),
                npz_steps: 2,
                samples: 8,
            },
            false => Plan {
                train_images: 512,
                heldout_images: 256,
                steps: steps.unwrap_or(1200),
                npz_steps: 200,
                samples: 128,
            },
        }
    }
}

/// Notes of the runs on stderr.
fn note(line: &str) {
    eprintln!("{line}");
}

/// A run of `scorelab train` (its defaults) into `run`, resuming a run there.
pub(crate) fn train_spec(run: &Path) -> TrainSpec {
    TrainSpec {
        out: run.to_path_buf(),
        mode: RunMode::Resume,
        progress: true,
        ..TrainSpec::default()
    }
}

/// `fid --images A --ref B`: the report's FID, its bootstrap standard error and counts.
fn fid(images: &Path, reference: &Path) -> Result<serde_json::Value> {
    let spec = fid_spec(Some(s(images).into()), None, s(reference));
    let r = scorelab_run::fid::fid(&spec, &Device::flex(), &scorelab_run::fid::Quiet)?;
    Ok(serde_json::json!({
        "images": images, "ref": reference, "fid": r["fid"], "n": r["n"], "n_ref": r["n_ref"],
        "std_error": r["bootstrap"]["std_error"],
    }))
}

/// `scorelab fid`'s defaults for `images` (or a checkpoint's samples) against `reference`.
pub(crate) fn fid_spec(
    images: Option<String>,
    checkpoint: Option<PathBuf>,
    reference: &str,
) -> FidSpec {
    FidSpec {
        images,
        checkpoint,
        n: None,
        steps: None,
        reference: reference.into(),
        kid: false,
        pr: false,
        bootstrap: None,
        opts: scorelab_run::fid::ImageOpts::default(),
        seed: 0,
    }
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Train as `spec` says (resuming a run in its folder), timed.
pub(crate) fn train(spec: &TrainSpec) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    let r = scorelab_run::train_run(spec, &Device::flex(), &note)?;
    Ok(
        serde_json::json!({"run": spec.out, "step": r.step, "loss": r.loss, "seconds_this_call": t0.elapsed().as_secs_f64()}),
    )
}

/// Sample `n` images of `run` into `out` (batches of 64, DPM-Solver++(2M), 12 steps),
/// of class `class` at guidance `w` where given.
fn sample(
    run: &Path,
    out: &Path,
    n: usize,
    seed: u64,
    class: Option<(usize, f64)>,
) -> Result<PathBuf> {
    let spec = SampleSpec {
        checkpoint: run.join("checkpoint.safetensors"),
        weights: score_train::pipeline::Weights::Ema,
        n,
        sampler: Some(Sampler::build("dpmpp-2m", seed, &GivenOptions::default())?),
        grid: Some(GridSpec {
            kind: GridKind::Karras,
            steps: 12,
            sigma_min: None,
            sigma_max: None,
            rho: None,
        }),
        ems: None,
        class: class.map(|c| c.0),
        guidance: class.map_or(1.0, |c| c.1),
        noise: None,
        teleport: None,
        batch: Some(64),
        out: out.to_path_buf(),
        seed,
    };
    scorelab_run::sample(&spec, &Device::flex(), &|_, _| {})?;
    Ok(out.join("images"))
}

/// `cargo xtask experiment own-data`.
pub fn experiment(work: &Path, results: &Path, quick: bool, steps: Option<usize>) -> Result<()> {
    let p = Plan::new(quick, steps);
    let data = work.join("shapes");
    let npz = shapes(&data, p.train_images, 64, 0)?;
    let heldout = work.join("heldout");
    shapes(&heldout, p.heldout_images, 64, 1)?;
    let folder_run = work.join("folder-run");
    let trained = train(&TrainSpec {
        data: Some(s(&data).into()),
        cond: Some("class".into()),
        steps: Some(p.steps),
        batch_size: Some(16),
        channels: Some(32),
        xflip: true,
        checkpoint_every: Some(50),
        ..train_spec(&folder_run)
    })?;
    let mut per_class = Vec::new();
    for (k, class) in CLASSES.iter().enumerate() {
        let out = work.join(format!("samples-{class}"));
        let images = sample(&folder_run, &out, p.samples, 100 + k as u64, Some((k, 2.0)))?;
        per_class.push(serde_json::json!({
            "class": class,
            "samples": fid(&images, &data.join(class))?,
            "heldout_floor": fid(&heldout.join(class), &data.join(class))?,
        }));
    }
    let npz_run = work.join("npz-run");
    let npz_trained = train(&TrainSpec {
        data: Some(s(&npz).into()),
        steps: Some(p.npz_steps),
        batch_size: Some(16),
        channels: Some(32),
        xflip: true,
        ..train_spec(&npz_run)
    })?;
    let n_all = (2 * p.samples).to_string();
    let npz_images = sample(
        &npz_run,
        &work.join("samples-npz"),
        2 * p.samples,
        200,
        None,
    )?;
    let report = serde_json::json!({
        "quick": quick, "steps": p.steps, "npz_steps": p.npz_steps, "images": p.train_images, "heldout": p.heldout_images, "resolution": 64,
        "folder": {"train": trained, "per_class": per_class},
        "npz": {"train": npz_trained, "samples": n_all,
                "fid": fid(&npz_images, &npz)?, "heldout_floor": fid(&heldout, &npz)?},
    });
    write_report(results, &report)
}

/// Write `results/report.json` atomically and print it.
pub(crate) fn write_report(results: &Path, report: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(results)?;
    let path = results.join("report.json");
    let text = serde_json::to_string_pretty(report)?;
    score_core::fs::write_atomic(&path, text.as_bytes())?;
    println!("{text}\nwrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_is_a_labelled_folder_and_the_same_array() {
        let dir = tempfile::tempdir().unwrap();
        let npz = shapes(&dir.path().join("s"), 6, 16, 3).unwrap();
        let folder = score_io::images::ImageDataset::from_folder(&dir.path().join("s")).unwrap();
        assert_eq!((folder.num_images(), folder.image_shape), (6, [3, 16, 16]));
        assert_eq!(folder.num_classes, 2);
        let arr = score_eval::fid::archive::npz_image_array(&npz).unwrap();
        let from_npz = score_io::images::ImageDataset::from_npy(arr, &npz).unwrap();
        // The folder lists disc/ before square/, the array keeps generation order.
        let order = [0, 2, 4, 1, 3, 5];
        for (k, &i) in order.iter().enumerate() {
            let len = 3 * 16 * 16;
            assert_eq!(
                folder.pixels[k * len..(k + 1) * len],
                from_npz.pixels[i * len..(i + 1) * len],
                "image {i}"
            );
        }
        // A seed fixes the images; another seed changes them.
        let again = shapes(&dir.path().join("t"), 6, 16, 3).unwrap();
        assert_eq!(std::fs::read(&npz).unwrap(), std::fs::read(&again).unwrap());
        let other = shapes(&dir.path().join("u"), 6, 16, 4).unwrap();
        assert_ne!(std::fs::read(&npz).unwrap(), std::fs::read(&other).unwrap());
    }
}
