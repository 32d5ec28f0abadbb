//! A training run's data: a data set by name, a `.npy`/`.npz` array or an image folder
//! (read image by image), its subset and x-flip, the fingerprint that a resume checks,
//! and σ_data of a new run.

use std::path::Path;

use score_io::images::{ImageDataset, Split};
use score_train::train::StreamedImageData;

use crate::error::{Result, invalid};
use crate::record::RunRecord;

/// Images by name (`fashion-mnist`, `fashion-mnist-test`), a folder of PNG/JPEG images
/// or a `.npy`/`.npz` image array; `dir` is where Fashion-MNIST's IDX files are.
pub fn load_images(name: &str, dir: Option<&Path>) -> Result<ImageDataset> {
    Ok(match name {
        "fashion-mnist" => ImageDataset::fashion_mnist(dir, Split::Train)?,
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
                return Err(invalid(format!(
                    "--data {other}: not a data set name (fashion-mnist, fashion-mnist-test), a folder of PNG/JPEG images or a .npy/.npz image array"
                )));
            }
        }
    })
}

/// What the data hold: vectors `[n, d]` (the MLP) or images (the UNet), in memory or,
/// for a folder, read image by image.
pub(crate) enum TrainData {
    Vectors(score_io::npy::NpyArray, usize),
    Images(ImageDataset),
    Streamed(score_io::folder::StreamedFolder),
}

/// Open the run's data: a `.npy` of rank 2 is vectors, of rank 3 or 4 images; names
/// and folders are images.
pub(crate) fn open_train_data(rec: &RunRecord) -> Result<TrainData> {
    let path = Path::new(&rec.data);
    if rec.resolution == Some(0) {
        return Err(invalid("--resolution: must be at least 1"));
    }
    let images = if path.is_dir() {
        // A folder is read image by image, at each batch (resized when asked).
        return Ok(TrainData::Streamed(score_io::folder::StreamedFolder::open(
            path,
            rec.resolution,
        )?));
    } else if !rec.data.ends_with(".npy") {
        load_images(&rec.data, rec.data_dir.as_deref())?
    } else {
        let arr = score_io::npy::read_npy_finite(path)?;
        if arr.shape.len() == 2 {
            if rec.resolution.is_some() {
                return Err(invalid(format!(
                    "--resolution: {} holds vectors, not images",
                    rec.data
                )));
            }
            let (_, d) = arr.matrix(path)?;
            return Ok(TrainData::Vectors(arr, d));
        }
        ImageDataset::from_npy(arr, path)?
    };
    Ok(TrainData::Images(match rec.resolution {
        Some(n) => {
            score_core::limits::ensure_values_fit(
                "--resolution",
                images.num_images() as u128,
                (n as u128).saturating_mul(n as u128).saturating_mul(3 * 4),
                "use a smaller --resolution",
            )?;
            images.with_resolution(n)
        }
        None => images,
    }))
}

/// The run's images: its subset, then its x-flip.
pub(crate) fn prepare_images(mut images: ImageDataset, rec: &RunRecord) -> Result<ImageDataset> {
    check_subset(rec, images.num_images())?;
    if rec.subset > 0 {
        images = images.balanced_subset(rec.subset);
        images.source = format!("{} (balanced subset of {})", images.source, rec.subset);
    }
    if rec.xflip {
        images = images.with_xflip();
    }
    Ok(images)
}

/// A digest of the data's values (and labels): FNV-1a over their bits, in order; a
/// folder's is the same read in memory or image by image.
fn fingerprint(data: &TrainData) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    match data {
        TrainData::Vectors(arr, _) => arr.data.iter().for_each(|v| eat(v.to_bits())),
        TrainData::Images(d) => {
            d.image_shape.iter().for_each(|&v| eat(v as u64));
            d.pixels.iter().for_each(|v| eat(v.to_bits() as u64));
            d.labels.iter().for_each(|&l| eat(l as u64));
        }
        TrainData::Streamed(f) => {
            f.image_shape.iter().for_each(|&v| eat(v as u64));
            for i in 0..f.len() {
                f.image(i)?.iter().for_each(|v| eat(v.to_bits() as u64));
            }
            f.labels.iter().for_each(|&l| eat(l as u64));
        }
    }
    Ok(format!("fnv1a64:{h:016x}"))
}

/// Record the data's fingerprint; on resume, refuse data that changed since the run
/// began (the same path can hold other images). Runs written before fingerprints were
/// recorded are not checked.
pub(crate) fn check_fingerprint(
    rec: &mut RunRecord,
    data: &TrainData,
    ck_path: &Path,
) -> Result<()> {
    let now = fingerprint(data)?;
    if let Some(was) = &rec.fingerprint
        && *was != now
    {
        return Err(invalid(format!(
            "--data {}: the data differ from those {} was trained on (fingerprint {was}, now {now}); --resume needs the same data (start a new run in another --out)",
            rec.data,
            ck_path.display()
        )));
    }
    rec.fingerprint = Some(now);
    Ok(())
}

/// Vectors (`.npy`) train the MLP: no labels to condition on, nothing to augment.
pub(crate) fn check_vector_run(rec: &RunRecord) -> Result<()> {
    if rec.cond != "none" {
        return Err(invalid(format!(
            "--cond class: {} has no labels (class conditioning needs an image data set)",
            rec.data
        )));
    }
    if rec.augment.is_some() {
        return Err(invalid(format!(
            "--augment: {} holds vectors; augmentation needs images",
            rec.data
        )));
    }
    if rec.subset > 0 {
        return Err(invalid(format!(
            "--subset: {} holds vectors; a class-balanced subset needs labelled images",
            rec.data
        )));
    }
    Ok(())
}

/// `--subset N` against the `available` images: a subset larger than the data set
/// used to train on all of it while the log said "balanced subset of N".
pub(crate) fn check_subset(rec: &RunRecord, available: usize) -> Result<()> {
    if rec.subset > available {
        return Err(invalid(format!(
            "--subset {}: {} holds only {available} images",
            rec.subset, rec.data
        )));
    }
    Ok(())
}

/// A new run's EDM preconditioning: σ_data as given, or the data's standard deviation.
pub fn new_precond(
    given: Option<f64>,
    data: &str,
    values: &mut dyn Iterator<Item = f64>,
) -> Result<score_core::Precond> {
    let sd = given.unwrap_or_else(|| score_core::precond::sigma_data_of(values));
    if !(sd > 0.0 && sd.is_finite()) {
        return Err(invalid(match given {
            Some(_) => format!("--sigma-data: must be positive and finite, got {sd}"),
            None => format!(
                "--data {data}: the data's standard deviation is {sd}, not a σ_data (constant data? give --sigma-data)"
            ),
        }));
    }
    Ok(score_core::Precond::edm(sd))
}

/// A new run's preconditioning from a streamed folder: σ_data over its examples in
/// order, each decoded once more (the same values, in the same order, as in memory).
pub(crate) fn streamed_precond(
    given: Option<f64>,
    rec: &RunRecord,
    data: &StreamedImageData,
) -> Result<score_core::Precond> {
    let mut failed = None;
    let values = (0..data.order.len()).flat_map(|k| match data.example(k) {
        Ok(px) => px,
        Err(e) => {
            failed.get_or_insert(e);
            Vec::new()
        }
    });
    let precond = new_precond(given, &rec.data, &mut values.map(|v| v as f64));
    match failed {
        Some(e) => Err(e.into()),
        None => precond,
    }
}
