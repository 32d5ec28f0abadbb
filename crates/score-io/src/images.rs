//! Image data sets: Fashion-MNIST (and any IDX image/label pair) as a burn `Dataset`.
//!
//! The repository ships the Fashion-MNIST *test* set (10 000 images, MIT licence, in
//! `data/fashion-mnist/`). The 60 000-image training set is read from Debian's
//! `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist`) or from any
//! folder given with `--data`, when present. Pixels are scaled to [−1, 1], so that
//! σ_data ≈ 0.5 as EDM assumes.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use burn::tensor::{Device, Tensor};

use crate::idx::read_idx;
use score_core::error::{Result, ScoreError};
use score_core::tensor::from_f32;

/// One image and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// Pixels `[c, h, w]` in [−1, 1], row-major.
    pub pixels: Vec<f32>,
    /// The class label.
    pub label: usize,
}

/// An in-memory image data set with labels.
#[derive(Debug, Clone)]
pub struct ImageDataset {
    /// Pixels of all images, `[n, c, h, w]` in [−1, 1].
    pub pixels: Vec<f32>,
    /// Labels, one per image.
    pub labels: Vec<usize>,
    /// `[c, h, w]`.
    pub image_shape: [usize; 3],
    /// Number of classes.
    pub num_classes: usize,
    /// Where the data came from.
    pub source: String,
}

/// Which Fashion-MNIST split to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60 000 training images (`train-images-idx3-ubyte[.gz]`).
    Train,
    /// 10 000 test images (`t10k-images-idx3-ubyte[.gz]`), shipped in the repo.
    Test,
}

/// Fashion-MNIST class names, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The folder of the data sets shipped with the repository: `$SCORELAB_DATA_DIR` if set;
/// else the checkout the binary was built from; else, for a binary copied elsewhere
/// (e.g. to a GPU machine), `data/` under the current directory when that exists.
pub fn shipped_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SCORELAB_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = manifest.ancestors().nth(2).unwrap_or(manifest).join("data");
    let here = PathBuf::from("data");
    if !built.is_dir() && here.is_dir() {
        return here;
    }
    built
}

/// A byte value 0–255 as a pixel in [−1, 1]: `b / 127.5 − 1` in f32, the one map every
/// reader (IDX, PNG/JPEG folders, byte-range arrays) uses, so the same image reads to
/// the same bits whatever file holds it.
pub fn byte_to_signed(b: f32) -> f32 {
    b / 127.5 - 1.0
}

/// Debian's `dataset-fashion-mnist` folder.
pub const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Where `cargo xtask fashion-mnist-setup` unpacks Debian's package without
/// installing it (no root needed): `<cache>/fashion-mnist`.
pub fn cached_fashion_dir() -> PathBuf {
    score_core::fs::cache_dir().join("fashion-mnist")
}

fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

impl ImageDataset {
    /// Read an IDX image file and its label file.
    pub fn from_idx(images: &Path, labels: &Path, num_classes: usize) -> Result<Self> {
        let im = read_idx(images)?;
        let lb = read_idx(labels)?;
        if im.shape.len() != 3 {
            return Err(ScoreError::format(
                images,
                "IDX",
                format!("dimensions: expected [n, h, w], got {:?}", im.shape),
            ));
        }
        if im.shape[1] == 0 || im.shape[2] == 0 {
            return Err(ScoreError::format(
                images,
                "IDX",
                format!(
                    "dimensions: images of {}×{} pixels (height and width must be at least 1)",
                    im.shape[1], im.shape[2]
                ),
            ));
        }
        if lb.shape != [im.shape[0]] {
            return Err(ScoreError::format(
                labels,
                "IDX",
                format!(
                    "dimensions: expected [{}] labels to match {}, got {:?}",
                    im.shape[0],
                    images.display(),
                    lb.shape
                ),
            ));
        }
        if let Some(bad) = lb.data.iter().find(|&&l| l as usize >= num_classes) {
            return Err(ScoreError::format(
                labels,
                "IDX",
                format!("data: label {bad} is not below {num_classes}"),
            ));
        }
        Ok(Self {
            pixels: im.data.iter().map(|&b| byte_to_signed(b as f32)).collect(),
            labels: lb.data.iter().map(|&l| l as usize).collect(),
            image_shape: [1, im.shape[1], im.shape[2]],
            num_classes,
            source: images.display().to_string(),
        })
    }

    /// Fashion-MNIST from `dir` (which holds the four IDX files, plain or gzipped).
    pub fn fashion_mnist_in(dir: &Path, split: Split) -> Result<Self> {
        let (im, lb) = match split {
            Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        };
        let missing = |stem: &str| {
            ScoreError::io(
                dir.join(stem),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (plain or .gz)"),
            )
        };
        let images = find_file(dir, im).ok_or_else(|| missing(im))?;
        let labels = find_file(dir, lb).ok_or_else(|| missing(lb))?;
        Self::from_idx(&images, &labels, 10)
    }

    /// Fashion-MNIST from the first place that has the split: `dir` when given, the
    /// repository's `data/fashion-mnist` (test split only), Debian's package folder,
    /// and [`cached_fashion_dir`].
    pub fn fashion_mnist(dir: Option<&Path>, split: Split) -> Result<Self> {
        if let Some(d) = dir {
            return Self::fashion_mnist_in(d, split);
        }
        let candidates = [
            shipped_data_dir().join("fashion-mnist"),
            PathBuf::from(DEBIAN_FASHION_DIR),
            cached_fashion_dir(),
        ];
        let (stem, fix) = match split {
            Split::Train => (
                "train-images-idx3-ubyte",
                "the training split is not shipped: run `cargo xtask fashion-mnist-setup` (Debian's package, unpacked into the cache), `apt-get install dataset-fashion-mnist`, or pass --data-dir (`--data fashion-mnist-test` uses the shipped 10 000 images)",
            ),
            Split::Test => (
                "t10k-images-idx3-ubyte",
                "the test split ships in a checkout's data/fashion-mnist: pass --data-dir, or set SCORELAB_DATA_DIR to the checkout's data folder (a binary run away from its checkout does not find it)",
            ),
        };
        // The first folder that has the images is read (and its errors reported); the
        // message for none names every folder tried, not only the last.
        match candidates.iter().find(|c| find_file(c, stem).is_some()) {
            Some(c) => Self::fashion_mnist_in(c, split),
            None => Err(ScoreError::invalid(
                "data",
                format!(
                    "Fashion-MNIST's {stem}[.gz] is in none of {}; {fix}",
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Number of images.
    pub fn num_images(&self) -> usize {
        self.labels.len()
    }

    /// Values per image (c·h·w).
    pub fn image_len(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// The first `n` images per class in turn (a class-balanced subset, deterministic).
    pub fn balanced_subset(&self, n: usize) -> Self {
        self.select(&balanced_indices(&self.labels, self.num_classes, n))
    }

    /// Every image followed, after all of them, by its left-right mirror (EDM's
    /// dataset `xflip`: twice the images, labels repeated).
    pub fn with_xflip(&self) -> Self {
        let [c, h, w] = self.image_shape;
        let mirrored = self
            .pixels
            .chunks_exact(w.max(1))
            .flat_map(|row| row.iter().rev());
        let mut pixels = self.pixels.clone();
        pixels.extend(mirrored);
        debug_assert_eq!(pixels.len(), 2 * self.num_images() * c * h * w);
        Self {
            pixels,
            labels: [self.labels.clone(), self.labels.clone()].concat(),
            image_shape: self.image_shape,
            num_classes: self.num_classes,
            source: format!("{} (x-flipped copies added)", self.source),
        }
    }

    /// The images at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        let len = self.image_len();
        Self {
            pixels: idx
                .iter()
                .flat_map(|&i| self.pixels[i * len..(i + 1) * len].iter().copied())
                .collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            image_shape: self.image_shape,
            num_classes: self.num_classes,
            source: self.source.clone(),
        }
    }

    /// The images at `idx` as a tensor `[B, c, h, w]` and their labels as one-hot `[B, K]`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Tensor<2>) {
        let len = self.image_len();
        let mut px = Vec::with_capacity(idx.len() * len);
        let mut onehot = vec![0f32; idx.len() * self.num_classes];
        for (b, &i) in idx.iter().enumerate() {
            px.extend_from_slice(&self.pixels[i * len..(i + 1) * len]);
            onehot[b * self.num_classes + self.labels[i]] = 1.0;
        }
        let [c, h, w] = self.image_shape;
        (
            from_f32(px, [idx.len(), c, h, w], device),
            from_f32(onehot, [idx.len(), self.num_classes], device),
        )
    }

    /// All pixels as float64 rows `[n, c·h·w]` (for metrics and Gaussian fits).
    pub fn rows_f64(&self) -> Vec<f64> {
        self.pixels.iter().map(|&v| v as f64).collect()
    }
}

/// The first `n` images, class-balanced: the first of each class in turn, then the
/// second of each, and so on (all of them when `n` is past their number).
pub fn balanced_indices(labels: &[usize], num_classes: usize, n: usize) -> Vec<usize> {
    let mut per_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        per_class[l].push(i);
    }
    let mut idx = Vec::new();
    let mut round = 0;
    while idx.len() < n.min(labels.len()) {
        for c in &per_class {
            if let Some(&i) = c.get(round)
                && idx.len() < n
            {
                idx.push(i);
            }
        }
        round += 1;
    }
    idx
}

impl Dataset<ImageItem, ScoreError> for ImageDataset {
    fn get(&self, index: usize) -> Result<ImageItem> {
        if index >= self.num_images() {
            return Err(ScoreError::invalid(
                "index",
                format!("{index} is past the {} images", self.num_images()),
            ));
        }
        let len = self.image_len();
        Ok(ImageItem {
            pixels: self.pixels[index * len..(index + 1) * len].to_vec(),
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.num_images()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_fashion_mnist_test_set_loads() {
        let ds = ImageDataset::fashion_mnist(None, Split::Test).unwrap();
        assert_eq!(ds.num_images(), 10_000);
        assert_eq!(ds.image_shape, [1, 28, 28]);
        assert!(ds.pixels.iter().all(|v| (-1.0..=1.0).contains(v)));
        // Fashion-MNIST's test split is balanced: 1000 images per class.
        let mut counts = [0usize; 10];
        ds.labels.iter().for_each(|&l| counts[l] += 1);
        assert_eq!(counts, [1000; 10]);
        let sub = ds.balanced_subset(25);
        assert_eq!(sub.labels[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let item = ds.get(3).unwrap();
        assert_eq!(item.pixels.len(), 784);
        assert!(ds.get(10_000).is_err());
    }

    #[test]
    fn zero_sized_images_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let im = dir.path().join("t10k-images-idx3-ubyte");
        crate::idx::write_idx(&im, &[2, 0, 0], &[]).unwrap();
        crate::idx::write_idx(&dir.path().join("t10k-labels-idx1-ubyte"), &[2], &[0, 1]).unwrap();
        let msg = ImageDataset::fashion_mnist(Some(dir.path()), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("t10k-images-idx3-ubyte") && msg.contains("0×0"),
            "{msg}"
        );
    }

    #[test]
    fn label_count_mismatch_names_the_label_file() {
        let dir = tempfile::tempdir().unwrap();
        crate::idx::write_idx(
            &dir.path().join("t10k-images-idx3-ubyte"),
            &[2, 2, 2],
            &[0; 8],
        )
        .unwrap();
        crate::idx::write_idx(&dir.path().join("t10k-labels-idx1-ubyte"), &[3], &[0, 1, 2])
            .unwrap();
        let msg = ImageDataset::fashion_mnist(Some(dir.path()), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("t10k-labels-idx1-ubyte") && msg.contains("dimensions"),
            "{msg}"
        );
    }
}
