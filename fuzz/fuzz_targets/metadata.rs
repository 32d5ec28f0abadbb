//! Fuzz `parse_metadata` (shape detection, label normalisation) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musicscore_data::metadata::{Fields, parse_metadata};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_metadata(data, std::path::Path::new("fuzz.json")) {
        let _ = m.shape.to_string();
        for r in &m.records {
            // Re-derive the fields from the raw map: must agree, must not panic.
            assert_eq!(Fields::from_raw(&r.raw), r.fields);
            for f in [
                "title",
                "composer",
                "key",
                "instrumentation",
                "year",
                "genres",
                "genre",
            ] {
                let _ = r.fields.get(f);
            }
        }
    }
});
