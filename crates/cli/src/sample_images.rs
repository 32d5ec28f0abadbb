//! `sample --batch B`: many images in bounded memory, one PNG per image, each from its
//! own noise so that any subset regenerates exactly (EDM's `generate.py --seeds`).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use score_core::samplers::Sampler;
use score_core::tensor::{from_f32, randn, stream_rng, to_vec_f32};
use score_train::pipeline::{self, LoadedModel};

use crate::args::SampleArgs;
use crate::common::{Common, bar, emit};

/// The random stream of image i's initial noise (distinct from training's streams).
const STREAM_IMAGE_NOISE: u64 = 0x1A6E_5EED;

/// `OUT/images/NNNNNN.png` of image `i` (six digits, more past 999 999).
fn image_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i:06}.png"))
}

/// Image i's unit noise `[c, h, w]`, from (seed, i) alone.
fn image_noise(seed: u64, i: usize, len: usize, dev: &Device) -> Result<Vec<f32>> {
    let mut rng = stream_rng(seed, STREAM_IMAGE_NOISE, i as u64);
    Ok(to_vec_f32(randn([len], &mut rng, dev))?)
}

/// Sample `a.n` images in batches of `batch` into `a.out/images/`, and `samples.npy` plus
/// the grid when every image fits in memory and none was there before.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sample_per_image(
    c: &Common,
    a: &SampleArgs,
    model: &LoadedModel,
    precond: score_core::Precond,
    sampler: &Sampler,
    sigmas: &[f64],
    batch: usize,
    dev: &Device,
) -> Result<()> {
    let LoadedModel::Unet(net, chw) = model else {
        bail!("--batch writes one PNG per image: it needs an image (UNet) checkpoint");
    };
    if a.noise.is_some() || a.teleport.is_some() {
        bail!(
            "--batch draws each image's noise from (seed, image): --noise and --teleport are not available with it"
        );
    }
    let dir = a.out.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| score_core::ScoreError::io(&dir, e))?;
    let len: usize = chw.iter().product();
    let mut keep = keeps_all(a.n, len);
    let mut all: Vec<f32> = Vec::new();
    let (t0, mut nfe, mut written) = (Instant::now(), 0, 0);
    let pb = (!c.json).then(|| bar(a.n as u64, "images"));
    for start in (0..a.n).step_by(batch) {
        let range = start..(start + batch).min(a.n);
        // A batch whose images are all there is kept as it is (a killed run continues);
        // the set is then no longer whole in memory, so samples.npy is not written.
        if range.clone().all(|i| image_path(&dir, i).is_file()) {
            keep = false;
        } else {
            let (values, used) = sample_range(
                c.seed(),
                a,
                net,
                *chw,
                precond,
                sampler,
                sigmas,
                &range,
                dev,
            )?;
            nfe = nfe.max(used);
            written += write_images(&dir, &values, *chw, &range)?;
            if keep {
                all.extend(values);
            }
        }
        if let Some(b) = &pb {
            b.set_position(range.end as u64);
        }
    }
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    if keep {
        write_whole_set(a, &all, *chw)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"checkpoint": a.checkpoint, "sampler": sampler.name(), "n": a.n, "batch": batch, "written": written, "kept": a.n - written, "nfe": nfe, "seconds": secs, "images": dir, "samples_npy": keep}),
        || {
            outln!(
                "{} images with {} in {secs:.1} s -> {} ({written} written, {} already there){}",
                a.n,
                sampler.name(),
                dir.display(),
                a.n - written,
                if keep {
                    "; samples.npy and samples.png beside it"
                } else {
                    ""
                }
            )
        },
    );
    Ok(())
}

/// Whether all `n` images (and their grid) fit in a quarter of the memory budget.
fn keeps_all(n: usize, len: usize) -> bool {
    let bytes = (n as u128) * (len as u128) * 4 * 2;
    bytes <= score_core::limits::memory_budget() as u128 / 4
}

/// Images `range` from their own noise: their values `[k, c, h, w]` and the NFE.
#[allow(clippy::too_many_arguments)]
fn sample_range(
    seed: u64,
    a: &SampleArgs,
    net: &score_nn::network::ImageNet,
    [ch, h, w]: [usize; 3],
    precond: score_core::Precond,
    sampler: &Sampler,
    sigmas: &[f64],
    range: &Range<usize>,
    dev: &Device,
) -> Result<(Vec<f32>, usize)> {
    let len = ch * h * w;
    let mut z = Vec::with_capacity(range.len() * len);
    for i in range.clone() {
        z.extend(image_noise(seed, i, len, dev)?);
    }
    let noise = from_f32(z, [range.len(), ch, h, w], dev);
    let condition = image_condition_for(net, a, range.clone(), dev)?;
    // Stochastic samplers draw their step noise per batch, seeded by its first image.
    let sampler = sampler
        .clone()
        .with_seed(seed.wrapping_add(range.start as u64));
    let out =
        pipeline::generate_images(net, precond, &sampler, sigmas, noise, &condition, |_, _| {})?;
    Ok((to_vec_f32(out.x)?, out.nfe))
}

/// Each image of `values` as its own PNG, written atomically; returns how many.
fn write_images(
    dir: &Path,
    values: &[f32],
    chw: [usize; 3],
    range: &Range<usize>,
) -> Result<usize> {
    let len: usize = chw.iter().product();
    for (k, i) in range.clone().enumerate() {
        let png = score_io::image::image_png(&values[k * len..(k + 1) * len], chw)?;
        score_core::fs::write_atomic(&image_path(dir, i), &png)?;
    }
    Ok(range.len())
}

/// `samples.npy` and `samples.png` of the whole set, as one unit.
fn write_whole_set(a: &SampleArgs, all: &[f32], [c, h, w]: [usize; 3]) -> Result<()> {
    let shape = [a.n, c, h, w];
    let npy = score_io::npy::npy_f32_bytes(&shape, all)?;
    let png = score_io::image::image_grid_png(all, shape, (a.n as f64).sqrt().ceil() as usize)?;
    let (np, pp) = (a.out.join("samples.npy"), a.out.join("samples.png"));
    score_core::fs::write_atomic_all(&[(&np, &npy), (&pp, &png)])?;
    Ok(())
}

/// The conditioning `sample` uses: classes (from --class, or in turn) and --guidance for
/// a class-conditional UNet; none for an unconditional one (where --class and
/// --guidance are errors).
pub(crate) fn image_condition(
    net: &score_nn::network::ImageNet,
    a: &SampleArgs,
    dev: &Device,
) -> Result<score_train::pipeline::ImageCondition> {
    image_condition_for(net, a, 0..a.n, dev)
}

/// The condition of images `range` (image i's class is `--class`, else i mod K).
pub(crate) fn image_condition_for(
    net: &score_nn::network::ImageNet,
    a: &SampleArgs,
    range: std::ops::Range<usize>,
    dev: &Device,
) -> Result<score_train::pipeline::ImageCondition> {
    let k = net.label_dim();
    if k == 0 {
        if a.class.is_some() || a.guidance != 1.0 {
            bail!(
                "--class/--guidance: {} is not class-conditional",
                a.checkpoint.display()
            );
        }
        return Ok(score_train::pipeline::ImageCondition::none());
    }
    if let Some(c) = a.class.filter(|&c| c >= k) {
        bail!("--class {c}: the checkpoint has classes 0..{}", k - 1);
    }
    if !a.guidance.is_finite() {
        bail!("--guidance: must be finite, got {}", a.guidance);
    }
    let classes: Vec<usize> = range.map(|i| a.class.unwrap_or(i % k)).collect();
    Ok(score_train::pipeline::ImageCondition::classes(
        &classes, k, a.guidance, dev,
    ))
}
