//! Fuzz the image readers on arbitrary bytes: the MusicScore page decoder (PNG and JPEG,
//! with the pixel limit checked before the buffer is allocated) and the image-folder
//! reader of `train --data DIR` (any PNG/JPEG mode to 8-bit channels). Errors are fine;
//! panics, overflows and huge allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musicscore_data::image::{DecodeOptions, decode};

fuzz_target!(|data: &[u8]| {
    let opts = DecodeOptions::default();
    if let Ok(r) = decode(data, &opts, None, "fuzz") {
        assert!((r.width as u64) * (r.height as u64) <= opts.max_pixels);
    }
    let _ = decode(data, &opts, Some((8, 8)), "fuzz");
    // The folder reader takes a path: one file per process, rewritten per input.
    for ext in ["png", "jpg"] {
        let path = std::env::temp_dir().join(format!("scorelab-fuzz-{}.{ext}", std::process::id()));
        if std::fs::write(&path, data).is_ok()
            && let Ok((c, h, w, px)) = score_io::folder::read_image_u8(&path)
        {
            assert_eq!(px.len(), c * h * w);
        }
    }
});
