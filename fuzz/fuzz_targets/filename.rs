//! Fuzz the IMSLP file-name parsers and the field normalisers on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musicscore_data::metadata::{normalize_composer, normalize_key, parse_year};
use musicscore_data::name::{parse_file_id, parse_page_key, parse_page_name};

fuzz_target!(|s: &str| {
    if let Ok(p) = parse_page_name(s) {
        // A parsed name prints back to a key that parses to the same name.
        assert_eq!(parse_page_key(&p.to_string()).ok(), Some(p));
        assert!(p.page >= 1);
    }
    let _ = parse_page_key(s);
    let _ = parse_file_id(s);
    let _ = normalize_composer(s);
    let _ = normalize_key(s);
    if let Some(y) = parse_year(s) {
        assert!((1000..2100).contains(&y));
    }
});
