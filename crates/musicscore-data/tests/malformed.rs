//! Hand-made bad input: every case gives a clear error or a counted, reported skip,
//! never a panic.

use std::io::Write;
use std::path::Path;

use musicscore_data::MusicScoreError;
use musicscore_data::corpus::{Corpus, OnError, OpenOptions, Split, find_layouts};
use musicscore_data::image::{DecodeOptions, decode, image_size, page_facts};

fn jpeg(w: u16, h: u16) -> Vec<u8> {
    // A white page with a few black staff-like lines.
    let mut px = vec![255u8; w as usize * h as usize * 3];
    for y in (h as usize / 4..h as usize * 3 / 4).step_by(4) {
        for x in 0..w as usize {
            px[(y * w as usize + x) * 3..][..3].fill(0);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn tar_gz(path: &Path, files: &[(&str, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn opts(on_error: OnError) -> OpenOptions {
    OpenOptions {
        on_error,
        facts: true,
        checkpoint_every: 4096,
        index_cache: None,
        ..Default::default()
    }
}

#[test]
fn bad_pages_in_a_folder_are_skipped_and_named_or_fail() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("misicscore-toy");
    write(&root.join("train/IMSLP10_1.jpg"), &jpeg(40, 56));
    write(&root.join("train/IMSLP10_2.jpg"), &jpeg(40, 56)[..200]); // truncated JPEG
    write(
        &root.join("train/IMSLP11_1.jpg"),
        b"this is not a JPEG at all",
    );
    write(&root.join("val/scan_0001.jpg"), &jpeg(40, 56)); // unparseable name
    write(&root.join("val/notes.txt"), b"ignored");
    write(&root.join("test/IMSLP12_3.jpg"), &jpeg(40, 56));
    write(
        &root.join("metadata.json"),
        br#"{"IMSLP10": {"Composer": "Bach, Johann Sebastian"}, "IMSLP99": {"Key": "C major"}}"#,
    );
    // find_layouts sees the older folder name through its structure.
    assert_eq!(find_layouts(d.path()).unwrap(), vec![root.clone()]);

    let c = Corpus::open(&root, &opts(OnError::Skip)).unwrap();
    assert_eq!(c.pages.len(), 2, "{:?}", c.report.skipped);
    let reasons: Vec<String> = c
        .report
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.source, s.reason))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("IMSLP10_2.jpg") && r.contains("JPEG")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("IMSLP11_1.jpg")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("scan_0001.jpg") && r.contains("does not start with 'IMSLP'"))
    );
    // The join reports both directions.
    assert_eq!(c.report.unmatched_pages, ["IMSLP12_3.jpg"]);
    assert_eq!(c.report.unmatched_records, ["IMSLP99"]);
    assert_eq!(c.pages[0].split, Split::Train);

    let e = Corpus::open(&root, &opts(OnError::Fail))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("IMSLP10_2.jpg") || e.contains("IMSLP11_1.jpg") || e.contains("scan_0001"),
        "{e}"
    );
}

#[test]
fn odd_metadata_is_reported_not_fatal_when_skipping() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("musicscore-14K");
    write(&root.join("train/IMSLP10_1.jpg"), &jpeg(40, 56));
    write(
        &root.join("hd_data_14k.json"),
        b"[{\"id\": \"IMSLP10\", \"Key\": ",
    );
    let c = Corpus::open(&root, &opts(OnError::Skip)).unwrap();
    assert!(c.metadata.is_none());
    assert_eq!(c.pages.len(), 1);
    assert!(c.report.skipped[0].source.ends_with("hd_data_14k.json"));
    assert!(
        c.report.skipped[0].reason.contains("not valid JSON"),
        "{:?}",
        c.report.skipped
    );
    assert_eq!(c.report.unmatched_pages, ["IMSLP10_1.jpg"]);
    let why = c.report.metadata_error.as_deref().unwrap_or_default();
    assert!(
        why.contains("hd_data_14k.json") && why.contains("not valid JSON"),
        "{why}"
    );
    let e = Corpus::open(&root, &opts(OnError::Fail)).unwrap_err();
    assert!(matches!(e, MusicScoreError::Metadata { .. }), "{e}");
    assert!(e.to_string().contains("hd_data_14k.json"));

    // The older file name with a good body is found and its shape reported.
    write(
        &root.join("hd_data_14k.json"),
        b"{\"id\": 10, \"Key\": \"g minor\"}\n{\"id\": 11}\n",
    );
    let c = Corpus::open(&root, &opts(OnError::Fail)).unwrap();
    let m = c.metadata.as_ref().unwrap();
    assert_eq!(m.shape.to_string(), "JSON Lines, id field 'id'");
    assert_eq!(c.fields(0).key.as_deref(), Some("G minor"));
    assert_eq!(c.report.unmatched_records, ["11"]);
}

#[test]
fn truncated_and_corrupt_archives() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("MusicScore-200k");
    std::fs::create_dir_all(&root).unwrap();
    let files: Vec<(String, Vec<u8>)> = (1..=6)
        .map(|p| (format!("train/IMSLP7_{p}.jpg"), jpeg(64, 90)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let good = root.join("val.tar.gz");
    tar_gz(&good, &refs);
    let bytes = std::fs::read(&good).unwrap();
    // A truncated train archive and a test archive with a flipped byte in the middle.
    std::fs::write(root.join("train.tar.gz"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(root.join("test.tar.gz"), &flipped).unwrap();

    let c = Corpus::open(&root, &opts(OnError::Skip)).unwrap();
    // val reads whole; the truncated train archive and the corrupt test archive are
    // reported by name (the flipped byte may first garble a page, then break the tar
    // stream or fail the CRC: each is its own report line).
    assert_eq!(c.pages.iter().filter(|p| p.split == Split::Val).count(), 6);
    let why: Vec<String> = c
        .report
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.source, s.reason))
        .collect();
    assert!(
        why.iter()
            .any(|w| w.contains("train.tar.gz") && w.contains("truncated")),
        "{why:#?}"
    );
    assert!(why.iter().any(|w| w.contains("test.tar.gz")), "{why:#?}");
    assert!(
        why.iter()
            .all(|w| w.contains("train.tar.gz") || w.contains("test.tar.gz")),
        "{why:#?}"
    );

    // Truncated in the end-of-archive padding: every page survives, the break is
    // still reported.
    std::fs::write(root.join("train.tar.gz"), &bytes[..bytes.len() - 12]).unwrap();
    std::fs::remove_file(root.join("test.tar.gz")).unwrap();
    let c = Corpus::open(&root, &opts(OnError::Skip)).unwrap();
    assert_eq!(
        c.pages.iter().filter(|p| p.split == Split::Train).count(),
        6
    );
    assert_eq!(c.report.skipped.len(), 1);
    assert!(
        c.report.skipped[0]
            .reason
            .contains("6 page(s) before the break are kept"),
        "{:?}",
        c.report.skipped
    );
    let t = c
        .pages
        .iter()
        .position(|p| p.split == Split::Train)
        .unwrap();
    assert_eq!(c.read(t).unwrap(), files[0].1);
    let e = Corpus::open(&root, &opts(OnError::Fail)).unwrap_err();
    assert!(matches!(e, MusicScoreError::Archive { .. }), "{e}");

    // Not a gzip file at all.
    std::fs::write(root.join("train.tar.gz"), b"PK\x03\x04 zip, not gzip").unwrap();
    let c = Corpus::open(&root, &opts(OnError::Skip)).unwrap();
    assert!(
        c.report.skipped[0].reason.contains("not a gzip"),
        "{:?}",
        c.report.skipped
    );
}

#[test]
fn huge_images_are_refused_before_decoding() {
    // A valid 16×16 JPEG whose frame header is patched to claim 60 000 × 60 000 pixels:
    // the decoder must refuse it from the header, without allocating 10 GB.
    let mut b = jpeg(16, 16);
    let sof = b.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    b[sof + 5..sof + 9].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]);
    assert_eq!(image_size(&b, "huge.jpg").unwrap(), (60_000, 60_000));
    let e = decode(&b, &DecodeOptions::default(), None, "huge.jpg")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("huge.jpg") && e.contains("exceeds the limit"),
        "{e}"
    );
    assert!(page_facts(&b, 64_000_000, "huge.jpg").is_err());
    // Zero-sized and empty inputs.
    b[sof + 5..sof + 9].copy_from_slice(&[0, 0, 0, 16]);
    assert!(decode(&b, &DecodeOptions::default(), None, "zero.jpg").is_err());
    assert!(decode(b"", &DecodeOptions::default(), None, "empty.jpg").is_err());
    assert!(
        decode(
            b"\x89PNG\r\n\x1a\n\0\0",
            &DecodeOptions::default(),
            None,
            "bad.png"
        )
        .is_err()
    );
}

#[test]
fn not_a_layout_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("readme.txt"), b"hello");
    let e = find_layouts(d.path()).unwrap_err().to_string();
    assert!(e.contains("no MusicScore layout"), "{e}");
    let e = Corpus::open(&d.path().join("missing"), &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("not a folder"), "{e}");
}

#[test]
fn a_file_or_work_in_two_published_splits_is_reported() {
    // IMSLP10 has pages in train and test (a file leak); IMSLP20 (train) and IMSLP21
    // (val) are two files of one work (a work leak); IMSLP30 is in train and unsplit,
    // which is not a leak between published splits.
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("musicscore-14K");
    for p in [
        "train/IMSLP10_1.jpg",
        "test/IMSLP10_2.jpg",
        "train/IMSLP20_1.jpg",
        "val/IMSLP21_1.jpg",
        "train/IMSLP30_1.jpg",
        "IMSLP30_2.jpg",
    ] {
        write(&root.join(p), &jpeg(40, 56));
    }
    write(
        &root.join("hd_data_14k.json"),
        br#"[{"id": "IMSLP20", "Composer": "Haydn, Joseph", "Work Title": "String Quartet"},
             {"id": "IMSLP21", "Composer": "Haydn, Joseph", "Work Title": "String Quartet"}]"#,
    );
    let c = Corpus::open(&root, &opts(OnError::Fail)).unwrap();
    let all: Vec<usize> = (0..c.pages.len()).collect();
    let s = musicscore_data::select::Stats::compute(&c, &all);
    let leaks = &s.split_leaks;
    assert_eq!(
        leaks.files,
        [(10, vec!["train".to_string(), "test".to_string()])]
    );
    let works: Vec<&str> = leaks.works.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(works, ["Joseph Haydn|String Quartet", "file:10"]);
    let md = s.to_markdown();
    assert!(
        md.contains(
            "| files / works in more than one split | 1 / 2 (e.g. IMSLP10 in train and test) |"
        ),
        "{md}"
    );
}

#[test]
fn a_partial_index_keeps_its_checkpoints() {
    // A truncated archive indexed with keep_partial: the entries before the break are
    // kept, and so are the inflater checkpoints taken before it (the index used to drop
    // them, so every read decoded from the start of a possibly 46 GB stream).
    let d = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (1..=8)
        .map(|p| {
            (
                format!("train/IMSLP7_{p}.jpg"),
                jpeg(300 + 8 * p as u16, 400),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let whole = d.path().join("whole.tar.gz");
    tar_gz(&whole, &refs);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = d.path().join("train.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let idx = musicscore_data::archive::ArchiveIndex::build(&cut, u64::MAX, 2048, true, |_, _| {})
        .unwrap();
    assert!(idx.broken.is_some());
    let n = idx.entries.len();
    assert!((1..8).contains(&n), "{n} entries kept");
    assert!(idx.checkpoints() > 0, "no checkpoints kept");
    for i in 0..n {
        assert_eq!(idx.read(i).unwrap(), files[i].1, "entry {i}");
    }
}

#[test]
fn a_second_open_reuses_the_saved_index_without_reading_the_archive() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("MusicScore-14K");
    std::fs::create_dir_all(&root).unwrap();
    let pages: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|k| (format!("train/IMSLP7_{k}.jpg"), jpeg(40 + 8 * k as u16, 56)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = pages.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let archive = root.join("train.tar.gz");
    tar_gz(&archive, &refs);
    let cache = d.path().join("cache");
    let opts = OpenOptions {
        on_error: OnError::Fail,
        checkpoint_every: 4096,
        index_cache: Some(cache.clone()),
        ..Default::default()
    };
    let first = Corpus::open(&root, &opts).unwrap();
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // Overwrite the archive's compressed body with zeros, keeping its size and
    // modification time: a fresh pass would fail, the saved index does not look.
    let mtime = std::fs::metadata(&archive).unwrap().modified().unwrap();
    let good = std::fs::read(&archive).unwrap();
    let mut bad = good.clone();
    bad[20..].fill(0);
    std::fs::write(&archive, &bad).unwrap();
    let f = std::fs::File::options().write(true).open(&archive).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let second = Corpus::open(&root, &opts).unwrap();
    let names = |c: &Corpus| {
        c.pages
            .iter()
            .map(|p| p.file_name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), names(&second));
    assert_eq!(second.pages.len(), 5);
    // Restore the bytes: random reads through the cached index (checkpoints rebuilt
    // on the first read) give every page back exactly.
    std::fs::write(&archive, &good).unwrap();
    let f = std::fs::File::options().write(true).open(&archive).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let third = Corpus::open(&root, &opts).unwrap();
    for (i, p) in third.pages.iter().enumerate() {
        let want = &pages
            .iter()
            .find(|(n, _)| n.ends_with(&p.file_name))
            .unwrap()
            .1;
        assert_eq!(&third.read(i).unwrap(), want, "{}", p.file_name);
    }
    // A poisoned cache (an entry's size made huge, or an entry dropped) is not used:
    // the archive is indexed afresh and every page is there (issue 26: the size was
    // allocated as given, and a dropped entry silently lost its page).
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut huge = v.clone();
    huge["entries"][0][2] = serde_json::json!(1u64 << 50);
    let mut fewer = v.clone();
    fewer["entries"].as_array_mut().unwrap().remove(1);
    for poisoned in [huge, fewer] {
        std::fs::write(&file, poisoned.to_string()).unwrap();
        let c = Corpus::open(&root, &opts).unwrap();
        assert_eq!(names(&c), names(&first));
        for i in 0..c.pages.len() {
            c.read(i).unwrap();
        }
    }
    // A changed archive (another size) is indexed afresh, not served stale.
    tar_gz(&archive, &refs[..3]);
    assert_eq!(Corpus::open(&root, &opts).unwrap().pages.len(), 3);
}

/// Issue 26: three pages with one base name in different archive folders were
/// reported as 3 exported images while one file (and three metadata lines naming it)
/// was written. Every page is now written under a name of its own, and the renaming is
/// reported.
#[test]
fn pages_sharing_a_base_name_are_all_exported_under_names_of_their_own() {
    use musicscore_data::export::export_imagefolder;
    use musicscore_data::prompt::{Captioner, Template};
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("musicscore-14K");
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|dir| format!("{dir}/IMSLP10_1.jpg"))
        .collect();
    let pages: Vec<(&str, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(k, n)| (n.as_str(), jpeg(40 + 8 * k as u16, 56)))
        .collect();
    std::fs::create_dir_all(&root).unwrap();
    tar_gz(&root.join("train.tar.gz"), &pages);
    let c = Corpus::open(&root, &opts(OnError::Skip)).unwrap();
    assert_eq!(c.pages.len(), 3);
    let assign: Vec<(usize, Split)> = (0..3).map(|i| (i, Split::Train)).collect();
    let out = d.path().join("hf");
    let cap = Captioner::new(Template::default());
    let s = export_imagefolder(&c, &assign, &out, &cap, None, false).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(out.join("train"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["IMSLP10_1.jpg", "IMSLP10_1__2.jpg", "IMSLP10_1__3.jpg"]
    );
    assert_eq!(s.images["train"], 3);
    assert_eq!(s.renamed.len(), 2);
    let lines = std::fs::read_to_string(out.join("train/metadata.jsonl")).unwrap();
    let named: std::collections::BTreeSet<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["file_name"].to_string())
        .collect();
    assert_eq!(named.len(), 3, "{lines}");
}
