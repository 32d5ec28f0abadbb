//! Fuzz the IDX parser (MNIST / Fashion-MNIST) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use score_io::idx::parse_idx;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_idx(data) {
        assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
    }
});
