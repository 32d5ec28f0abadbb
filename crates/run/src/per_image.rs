//! Sampling image by image (`scorelab sample --batch B`): many images in bounded memory,
//! one PNG per image, each from its own noise so that any subset regenerates exactly
//! (EDM's `generate.py --seeds`); images already written are kept, so a killed run
//! continues where it stopped.

use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use score_core::tensor::{from_f32, randn, stream_rng, to_vec_f32};
use score_nn::network::ImageNet;
use score_train::pipeline::{self, LoadedModel};

use crate::error::{Result, invalid};
use crate::spec::{PerImage, SampleSpec, image_condition};

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

/// Sample `spec.n` images in batches of `batch` into `spec.out/images/`, and
/// `samples.npy` plus the grid when every image fits in memory and none was there
/// before; images done are reported to `on_step`. Returns the largest NFE of a batch
/// beside the report.
pub(crate) fn sample(
    spec: &SampleSpec,
    model: &LoadedModel,
    precond: score_core::Precond,
    sigmas: &[f64],
    batch: usize,
    dev: &Device,
    on_step: &dyn Fn(u64, u64),
) -> Result<(PerImage, usize)> {
    let LoadedModel::Unet(net, chw) = model else {
        return Err(invalid(
            "--batch writes one PNG per image: it needs an image (UNet) checkpoint",
        ));
    };
    if spec.noise.is_some() || spec.teleport.is_some() {
        return Err(invalid(
            "--batch draws each image's noise from (seed, image): --noise and --teleport are not available with it",
        ));
    }
    let dir = spec.out.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| score_core::ScoreError::io(&dir, e))?;
    let len: usize = chw.iter().product();
    let mut keep = keeps_all(spec.n, len);
    let mut all: Vec<f32> = Vec::new();
    let (mut nfe, mut written) = (0, 0);
    for start in (0..spec.n).step_by(batch) {
        let range = start..(start + batch).min(spec.n);
        // A batch whose images are all there is kept as it is (a killed run continues);
        // the set is then no longer whole in memory, so samples.npy is not written.
        if range.clone().all(|i| image_path(&dir, i).is_file()) {
            keep = false;
        } else {
            let (values, used) = sample_range(spec, net, *chw, (precond, sigmas), &range, dev)?;
            nfe = nfe.max(used);
            written += write_images(&dir, &values, *chw, &range)?;
            if keep {
                all.extend(values);
            }
        }
        on_step(range.end as u64, spec.n as u64);
    }
    if keep {
        let [c, h, w] = *chw;
        let shape = [spec.n, c, h, w];
        let png =
            score_io::image::image_grid_png(&all, shape, (spec.n as f64).sqrt().ceil() as usize)?;
        crate::spec::write_samples(&spec.out, &shape, &all, Some(&png))?;
    }
    let done = PerImage {
        batch,
        written,
        kept: spec.n - written,
        images: dir,
        samples_npy: keep,
    };
    Ok((done, nfe))
}

/// Whether all `n` images (and their grid) fit in a quarter of the memory budget.
fn keeps_all(n: usize, len: usize) -> bool {
    let bytes = (n as u128) * (len as u128) * 4 * 2;
    bytes <= score_core::limits::memory_budget() as u128 / 4
}

/// Images `range` from their own noise: their values `[k, c, h, w]` and the NFE.
fn sample_range(
    spec: &SampleSpec,
    net: &ImageNet,
    [ch, h, w]: [usize; 3],
    (precond, sigmas): (score_core::Precond, &[f64]),
    range: &Range<usize>,
    dev: &Device,
) -> Result<(Vec<f32>, usize)> {
    let len = ch * h * w;
    let mut z = Vec::with_capacity(range.len() * len);
    for i in range.clone() {
        z.extend(image_noise(spec.seed, i, len, dev)?);
    }
    let noise = from_f32(z, [range.len(), ch, h, w], dev);
    let condition = image_condition(net, spec, range.clone(), dev)?;
    // Stochastic samplers draw their step noise per batch, seeded by its first image.
    let sampler = spec
        .sampler()?
        .with_seed(spec.seed.wrapping_add(range.start as u64));
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
