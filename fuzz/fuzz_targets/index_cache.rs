//! Fuzz the MusicScore archive-index cache: the input, read as JSON, becomes a cache file
//! for a real archive (its size, modification time, format and a matching digest filled
//! in when the entries are well-formed, so that the soundness checks and the reads
//! behind them are reached), then the cache is loaded and every entry it yields is read.
//! Errors and a refused cache are fine; panics, overflows and huge allocations are not.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use musicscore_data::archive::{ArchiveIndex, entries_digest};

/// A small gzip'd tar with two entries, and the cache folder, made once per process.
fn setup() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("scorelab-fuzz-index-{}", std::process::id()));
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let archive = dir.join("pages.tar.gz");
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, body) in [("IMSLP1_1.png", &b"0123456789"[..]), ("IMSLP1_2.png", &b"abc"[..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_cksum();
            tar.append_data(&mut h, name, body).unwrap();
        }
        std::fs::write(&archive, tar.into_inner().unwrap().finish().unwrap()).unwrap();
        // One honest cache file, whose place the inputs then take.
        ArchiveIndex::build(&archive, 1 << 20, 0, false, |_, _| {})
            .unwrap()
            .save_cached(&cache)
            .unwrap();
        (archive, cache)
    })
}

fuzz_target!(|data: &[u8]| {
    let (archive, cache) = setup();
    let Ok(serde_json::Value::Object(mut saved)) = serde_json::from_slice(data) else {
        return;
    };
    // Point the input at the real archive: the one cache file of this archive, fresh.
    let limit = 1u64 << 20;
    let meta = std::fs::metadata(archive).unwrap();
    let mtime = meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
    saved.insert("format".into(), 2.into());
    saved.insert("archive".into(), archive.display().to_string().into());
    saved.insert("size".into(), meta.len().into());
    saved.insert("mtime_ns".into(), serde_json::json!(mtime.as_nanos()));
    saved.insert("max_entry_bytes".into(), limit.into());
    if let Some(entries) = saved.get("entries").cloned()
        && let Ok(list) = serde_json::from_value::<Vec<(String, u64, u64)>>(entries)
    {
        saved.insert("digest".into(), entries_digest(&list).into());
    }
    // Write it where `load_cached` looks (the one cache file of this archive).
    for f in std::fs::read_dir(cache).unwrap().flatten() {
        std::fs::write(f.path(), serde_json::to_vec(&saved).unwrap()).unwrap();
    }
    if let Some(index) = ArchiveIndex::load_cached(archive, cache, limit, 0) {
        for i in 0..index.entries.len().min(64) {
            if let Ok(bytes) = index.read(i) {
                assert!(bytes.len() as u64 <= limit);
            }
        }
    }
});
