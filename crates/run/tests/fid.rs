//! FID as a library call on two statistics files (pytorch-fid's `fid_score A.npz B.npz`):
//! no network is involved, so the closed form is checked exactly.

use burn::tensor::Device;
use score_eval::fid::FeatureStats;
use scorelab_run::fid::{FidSpec, ImageOpts, Quiet, fid};

fn stats(dir: &std::path::Path, name: &str, shift: f64) -> String {
    // Two-dimensional features: N(shift·1, I) as mean and covariance.
    let s = FeatureStats {
        n: 10,
        mu: vec![shift, shift],
        sigma: faer::Mat::identity(2, 2),
    };
    let p = dir.join(name);
    s.save_npz(&p).unwrap();
    p.display().to_string()
}

#[test]
fn two_statistics_files_give_the_closed_form_and_refuse_feature_measures() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        stats(dir.path(), "a.npz", 0.0),
        stats(dir.path(), "b.npz", 3.0),
    );
    let mut spec = FidSpec {
        images: Some(a),
        checkpoint: None,
        n: None,
        steps: None,
        reference: b,
        kid: false,
        pr: false,
        bootstrap: None,
        opts: ImageOpts::default(),
        seed: 0,
    };
    // Same covariance: FID = ‖μ₁ − μ₂‖² = 2 · 3².
    let r = fid(&spec, &Device::flex(), &Quiet).unwrap();
    assert!((r["fid"].as_f64().unwrap() - 18.0).abs() < 1e-9, "{r}");
    assert_eq!(
        (r["n"].as_u64(), r["statistics"].as_bool()),
        (Some(10), Some(true))
    );
    spec.kid = true;
    let e = fid(&spec, &Device::flex(), &Quiet).unwrap_err().to_string();
    assert!(e.contains("--kid and --pr"), "{e}");
    // A resample count was silently ignored for statistics files (issue 26).
    (spec.kid, spec.bootstrap) = (false, Some(50));
    let e = fid(&spec, &Device::flex(), &Quiet).unwrap_err().to_string();
    assert!(e.contains("--bootstrap"), "{e}");
}
