//! EDM's networks against the reference: `xtask/fixtures/edm_golden.py` builds
//! SongUNet (DDPM++, NCSN++, and the skip encoder/decoder) and DhariwalUNet (with
//! EDMPrecond and with iDDPMPrecond) with
//! random weights in PyTorch, transcribed from EDM's `training/networks.py`, and stores
//! the precond's state dict with D(x; σ) at four σ from 0.02 to 60 (one per item), in
//! float32 and float64. Here the same state dict is loaded key for key (float16 on disk)
//! and D(x; σ) is compared.
//!
//! The bound: both sides compute in float32 and differ only in summation order, so
//! each is within its own rounding error of the float64 value D64. The fixture
//! records PyTorch's, e32 = max|D32 − D64| / max|D64| (2e−7 to 5e−6 here). A dot
//! product of K terms has a worst-case error of K·u·Σ|aᵢbᵢ| for any order but a
//! typical one of √K·u; two orders of the same sums differ by about the same typical
//! amount, so ours is held to 8·e32 of max|D64| (a factor of √(K_max/K_min) ≈ √(27·64/27)
//! = 8 between the widest and the narrowest reduction of these networks), with a
//! floor of 8 u = 8·2⁻²⁴·max|D64| for the cases where PyTorch's error happens to be
//! tiny. A wrong layer, a swapped embedding half or a mis-split qkv is off by O(1).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use score_core::denoiser::{Conditioning, Denoiser};
use score_nn::Preconditioned;
use score_nn::edm::{EdmNetConfig, EdmPrecondConfig};
use score_nn::import::StateDict;

fn fixture(case: &str, ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/edm/{case}.{ext}"))
}

fn tensor<const D: usize>(sd: &StateDict, key: &str, dev: &Device) -> Tensor<D> {
    let (shape, values) = sd.get(key).unwrap();
    Tensor::from_data(TensorData::new(values.clone(), shape.clone()), dev)
}

fn check(case: &str) {
    let dev = Device::flex();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(case, "json")).unwrap()).unwrap();
    let cfg: EdmNetConfig = serde_json::from_value(meta["network"].clone()).unwrap();
    let precond: EdmPrecondConfig = serde_json::from_value(meta["precond"].clone()).unwrap();
    let e32 = meta["torch_f32_rel_err"].as_f64().unwrap();
    let sd = StateDict::read_safetensors(&fixture(case, "safetensors")).unwrap();
    let weights = StateDict {
        tensors: sd.strip_prefix("model.").tensors,
        source: sd.source.clone(),
    };
    let net = cfg.init(&dev).unwrap().load_torch(&weights, &cfg).unwrap();
    let x: Tensor<4> = tensor(&sd, "golden.x", &dev);
    let sigma: Tensor<1> = tensor(&sd, "golden.sigma", &dev);
    let cond = Conditioning {
        class_labels: (cfg.label_dim > 0).then(|| tensor(&sd, "golden.labels", &dev)),
        augment: (cfg.augment_dim > 0).then(|| tensor(&sd, "golden.augment", &dev)),
        ..Conditioning::default()
    };
    let d = Preconditioned::new(&net, precond.precond()).denoise(x, sigma, Some(&cond));
    let ours = score_core::tensor::to_vec_f32(d).unwrap();
    let (_, d64) = sd.get("golden.out64").unwrap();
    let (_, d32) = sd.get("golden.out").unwrap();
    let scale = d64.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = |a: &[f32]| {
        a.iter()
            .zip(d64)
            .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()))
            / scale
    };
    let bound = 8.0 * e32.max(2f64.powi(-24));
    let (ours_err, torch_err) = (err(&ours), err(d32));
    println!("{case}: ours {ours_err:.3e}, torch {torch_err:.3e}, bound {bound:.3e}");
    assert!(
        ours_err <= bound,
        "{case}: max error {ours_err:.3e} of max|D| > bound {bound:.3e}"
    );
}

#[test]
fn ddpmpp_matches_edm() {
    check("ddpmpp");
}

#[test]
fn ncsnpp_matches_edm() {
    check("ncsnpp");
}

#[test]
fn song_unet_skip_encoder_decoder_matches_edm() {
    check("song-skip");
}

#[test]
fn dhariwal_unet_matches_edm() {
    check("adm");
}

#[test]
fn dhariwal_unet_with_iddpm_precond_matches_edm() {
    // ADM's learned variance doubles the outputs; iDDPMPrecond's c_noise is the index
    // of the nearest of its 1001 levels.
    check("adm-iddpm");
}
