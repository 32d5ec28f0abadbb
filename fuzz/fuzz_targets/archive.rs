//! Fuzz the streaming gzip + tar reader on arbitrary bytes (written to a temporary
//! file, as the reader takes a path): errors are fine, panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use musicscore_data::archive::stream_pages;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("msfuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("train.tar.gz");
    if std::fs::write(&path, data).is_ok() {
        let _ = stream_pages(&path, 1 << 20, |_, _| Ok(true));
    }
});
