//! Fuzz the `.npy` parser on arbitrary bytes: errors are fine, panics, overflows and
//! huge allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use score_io::npy::parse_npy;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_npy(data) {
        // What parsed must be self-consistent.
        assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
    }
});
