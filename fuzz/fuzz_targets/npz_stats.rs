//! Fuzz the `.npz` readers of `fid`: FID statistics (`mu`, `sigma`, checked for shape,
//! finiteness and a symmetric positive semi-definite covariance) and image arrays
//! (`arr_0`), on arbitrary bytes as a file. Errors are fine; panics, overflows and huge
//! allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use score_eval::fid::FeatureStats;
use score_eval::fid::archive::{npz_image_array, npz_keys};

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("scorelab-fuzz-{}.npz", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = npz_keys(&path);
    if let Ok(s) = FeatureStats::load_npz(&path) {
        assert_eq!(s.mu.len(), s.dim());
        assert!(s.mu.iter().all(|v| v.is_finite()));
    }
    if let Ok(a) = npz_image_array(&path) {
        assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
    }
});
