//! `{train,val,test}.tar.gz`: streamed reading and a one-pass random-access index.
//!
//! [`stream_pages`] walks an archive once, in order, handing each image entry's bytes to
//! a callback; memory holds one entry at a time, so a 46 GB archive is read in the time
//! it takes to decompress it and never unpacked. [`ArchiveIndex::build`] makes the same
//! pass and records, for every entry, its offset and size in the uncompressed tar stream,
//! plus inflater checkpoints every `checkpoint_every` bytes ([`crate::gz`]); reading entry
//! `i` afterwards decodes at most `checkpoint_every` bytes before it.
//!
//! The index's entries are saved in a cache ([`ArchiveIndex::save_cached`], keyed by
//! the archive's path, size and modification time) and reused by the next open
//! ([`ArchiveIndex::load_cached`]), which then reads nothing of the archive. The
//! inflater checkpoints are not saved (miniz_oxide's `InflateState` has no stable
//! serialised form): an index loaded from the cache rebuilds them in one pass at its
//! first random read, and streaming reads ([`stream_pages`]) never need them.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{MusicScoreError, Result, io};
use crate::gz::{Checkpoint, GzReader};
use crate::name::has_image_extension;

/// Entries larger than this are skipped as "too large" rather than read into memory
/// (a 200 dpi A4 page is well under 2 MB).
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 256 << 20;

/// Default spacing of inflater checkpoints in the index: 8 MiB of tar stream, i.e. about
/// 45 KB of memory per 8 MiB (≈ 250 MB of checkpoints for the 46 GB archive).
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 8 << 20;

fn archive_err(path: &Path, message: String) -> MusicScoreError {
    MusicScoreError::Archive {
        path: path.to_path_buf(),
        message,
    }
}

/// Where archive indexes are cached by default: `<scorelab cache>/musicscore-index`
/// (`$SCORELAB_CACHE` or `~/.cache/scorelab`).
pub fn default_index_cache() -> PathBuf {
    score_core::fs::cache_dir().join("musicscore-index")
}

/// True for `.tar.gz`, `.tgz` and `.tar` file names.
pub fn is_archive_name(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l.ends_with(".tar.gz") || l.ends_with(".tgz") || l.ends_with(".tar")
}

/// True for an uncompressed `.tar`.
fn is_plain_tar(path: &Path) -> bool {
    path.to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".tar")
}

fn open_stream(path: &Path, checkpoint_every: u64) -> Result<Box<dyn Stream>> {
    let file = score_core::fs::open_file(path)?;
    let reader = BufReader::with_capacity(1 << 16, file);
    if is_plain_tar(path) {
        Ok(Box::new(reader))
    } else {
        Ok(Box::new(
            GzReader::new(reader).with_checkpoints(checkpoint_every),
        ))
    }
}

/// The tar byte stream: gzip-decoded (with checkpoints) or a plain file.
trait Stream: Read {
    fn take_checkpoints(&mut self) -> Vec<Checkpoint> {
        Vec::new()
    }
}
impl<R: Read> Stream for GzReader<R> {
    fn take_checkpoints(&mut self) -> Vec<Checkpoint> {
        GzReader::take_checkpoints(self)
    }
}
impl Stream for BufReader<File> {}

/// What the streaming walk met, besides the pages it handed on.
#[derive(Debug, Clone, Default)]
pub struct WalkReport {
    /// Entries that are not image files (folders, text files).
    pub other_entries: usize,
    /// Image entries larger than the size limit: `(name, size)`.
    pub too_large: Vec<(String, u64)>,
}

/// One image entry of an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the archive, as stored.
    pub name: String,
    /// Offset of its data in the uncompressed tar stream.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Walk `path` once, calling `f(entry, bytes)` for every image entry in archive order.
/// `f` returns `false` to stop early. Errors in the archive (truncation, a bad tar
/// header, a CRC mismatch) are returned with the archive path and the last good entry;
/// the entries before them have been handed to `f` already.
pub fn stream_pages(
    path: &Path,
    max_entry_bytes: u64,
    mut f: impl FnMut(&Entry, Vec<u8>) -> Result<bool>,
) -> Result<WalkReport> {
    let w = walk(path, max_entry_bytes, 0, &mut f)?;
    match w.broken {
        Some(e) => Err(e),
        None => Ok(w.report),
    }
}

struct Walk {
    report: WalkReport,
    checkpoints: Vec<Checkpoint>,
    broken: Option<MusicScoreError>,
}

/// The data of an entry of `size` bytes (as its header says), or the error that breaks
/// the walk: unreadable or truncated.
fn read_entry(
    entry: &mut impl Read,
    name: &str,
    size: u64,
    path: &Path,
) -> std::result::Result<Vec<u8>, MusicScoreError> {
    let mut bytes = Vec::with_capacity(size.min(1 << 24) as usize);
    if let Err(err) = entry.read_to_end(&mut bytes) {
        let msg = format!("entry '{name}': cannot read its data: {err}");
        return Err(archive_err(path, msg));
    }
    if (bytes.len() as u64) != size {
        let msg = format!(
            "entry '{name}': {} of {size} bytes (truncated)",
            bytes.len()
        );
        return Err(archive_err(path, msg));
    }
    Ok(bytes)
}

/// The walk; a broken archive ends it with `broken` set, an error from `f` is returned.
fn walk(
    path: &Path,
    max_entry_bytes: u64,
    checkpoint_every: u64,
    f: &mut dyn FnMut(&Entry, Vec<u8>) -> Result<bool>,
) -> Result<Walk> {
    let stream = open_stream(path, checkpoint_every)?;
    let mut archive = tar::Archive::new(stream);
    let mut report = WalkReport::default();
    let mut last = String::from("(start of archive)");
    let broken = |last: &str, e: &dyn std::fmt::Display| {
        archive_err(path, format!("broken archive after entry '{last}': {e}"))
    };
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            return Ok(Walk {
                report,
                checkpoints: Vec::new(),
                broken: Some(archive_err(path, format!("cannot read tar stream: {e}"))),
            });
        }
    };
    // A break ends the loop with `broken` set; the checkpoints taken up to it are kept,
    // so that a partial index still reads its entries without decoding from the start.
    let mut broken_at = None;
    let mut stopped = false;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                broken_at = Some(broken(&last, &e));
                break;
            }
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = entry.header().entry_size().unwrap_or(0);
        let is_file = entry.header().entry_type().is_file();
        if !is_file || !has_image_extension(&name) {
            report.other_entries += 1;
            last = name;
            continue;
        }
        if size > max_entry_bytes {
            report.too_large.push((name.clone(), size));
            last = name;
            continue;
        }
        let e = Entry {
            name: name.clone(),
            offset: entry.raw_file_position(),
            size,
        };
        let bytes = match read_entry(&mut entry, &name, size, path) {
            Ok(b) => b,
            Err(e) => {
                broken_at = Some(e);
                break;
            }
        };
        if !f(&e, bytes)? {
            stopped = true;
            break;
        }
        last = e.name;
    }
    let mut stream = archive.into_inner();
    if broken_at.is_none() && !stopped {
        // Reach the real end of the stream so that trailing corruption is noticed too.
        if let Err(e) = std::io::copy(&mut stream, &mut std::io::sink()) {
            broken_at = Some(broken(&last, &e));
        }
    }
    Ok(Walk {
        report,
        checkpoints: stream.take_checkpoints(),
        broken: broken_at,
    })
}

/// Version of the saved index format.
const SAVED_FORMAT: u32 = 2;

/// An index as saved in the cache.
#[derive(Serialize, Deserialize)]
struct SavedIndex {
    format: u32,
    archive: String,
    size: u64,
    mtime_ns: u128,
    max_entry_bytes: u64,
    entries: Vec<(String, u64, u64)>,
    other_entries: usize,
    too_large: Vec<(String, u64)>,
    broken: Option<String>,
    /// FNV-1a of the entries, so that a damaged or edited cache is rebuilt, not used.
    digest: String,
}

/// FNV-1a over the entries' names, offsets and sizes (name, offset, size): the digest a
/// saved index carries, so that a damaged or edited cache is rebuilt, not used.
pub fn entries_digest(entries: &[(String, u64, u64)]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, offset, size) in entries {
        eat(name.as_bytes());
        eat(&[0]);
        eat(&offset.to_le_bytes());
        eat(&size.to_le_bytes());
    }
    format!("{h:016x}")
}

impl SavedIndex {
    /// Whether the saved entries are whole and possible: the digest matches, every
    /// size is within the limit the index was built with, and the entries follow one
    /// another without overlapping (as a tar stream lays them out).
    fn is_sound(&self) -> bool {
        let mut end = 0u64;
        self.digest == entries_digest(&self.entries)
            && self.entries.iter().all(|(_, offset, size)| {
                let ok = *size <= self.max_entry_bytes && *offset >= end;
                end = offset.saturating_add(*size);
                ok
            })
    }
}

/// Random access to the image entries of one archive, from one pass over it.
#[derive(Debug, Clone)]
pub struct ArchiveIndex {
    /// The archive.
    pub path: PathBuf,
    /// Image entries in archive order.
    pub entries: Vec<Entry>,
    /// What the pass met besides images.
    pub report: WalkReport,
    checkpoints: OnceLock<Vec<Checkpoint>>,
    max_entry_bytes: u64,
    checkpoint_every: u64,
    /// Why the pass stopped early, for an index built with `keep_partial`.
    pub broken: Option<String>,
}

impl ArchiveIndex {
    /// One pass over `path`: entry offsets and sizes, and gzip checkpoints every
    /// `checkpoint_every` bytes (0: no checkpoints; reads then decode from the start).
    /// `on_entry` sees every image entry's bytes during the pass (for headers, hashes).
    /// A broken archive is an error, unless `keep_partial`: then the index keeps the
    /// entries read before the break and [`ArchiveIndex::broken`] says what happened.
    pub fn build(
        path: &Path,
        max_entry_bytes: u64,
        checkpoint_every: u64,
        keep_partial: bool,
        mut on_entry: impl FnMut(&Entry, &[u8]),
    ) -> Result<ArchiveIndex> {
        let mut entries = Vec::new();
        let w = walk(path, max_entry_bytes, checkpoint_every, &mut |e, bytes| {
            on_entry(e, &bytes);
            entries.push(e.clone());
            Ok(true)
        })?;
        let broken = match w.broken {
            Some(e) if !keep_partial => return Err(e),
            Some(e) => Some(e.to_string()),
            None => None,
        };
        Ok(ArchiveIndex {
            path: path.to_path_buf(),
            entries,
            report: w.report,
            checkpoints: OnceLock::from(w.checkpoints),
            max_entry_bytes,
            checkpoint_every,
            broken,
        })
    }

    /// Number of inflater checkpoints held (0 for an index loaded from the cache until
    /// its first random read).
    pub fn checkpoints(&self) -> usize {
        self.checkpoints.get().map_or(0, Vec::len)
    }

    /// The checkpoints, rebuilt by one pass when the index came from the cache (none if
    /// that pass fails: reads then decode from the start, and report the failure).
    fn checkpoint_list(&self) -> &[Checkpoint] {
        self.checkpoints.get_or_init(|| {
            walk(
                &self.path,
                self.max_entry_bytes,
                self.checkpoint_every,
                &mut |_, _| Ok(true),
            )
            .map(|w| w.checkpoints)
            .unwrap_or_default()
        })
    }

    /// The cache file of `path`'s index under `cache`, and the archive's size and
    /// modification time (what makes a saved index stale).
    fn cache_key(path: &Path, cache: &Path) -> Option<(PathBuf, u64, u128)> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        let full = std::fs::canonicalize(path).ok()?;
        // FNV-1a of the full path: one file per archive, stable across runs.
        let hash = full
            .to_string_lossy()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
        let name = path.file_name()?.to_string_lossy();
        Some((
            cache.join(format!("{name}.{hash:016x}.json")),
            meta.len(),
            mtime,
        ))
    }

    /// Save the entries (not the checkpoints) under `cache`, atomically.
    pub fn save_cached(&self, cache: &Path) -> Result<()> {
        let Some((file, size, mtime_ns)) = Self::cache_key(&self.path, cache) else {
            return Ok(());
        };
        let entries: Vec<(String, u64, u64)> = (self.entries.iter())
            .map(|e| (e.name.clone(), e.offset, e.size))
            .collect();
        let saved = SavedIndex {
            format: SAVED_FORMAT,
            digest: entries_digest(&entries),
            archive: self.path.display().to_string(),
            size,
            mtime_ns,
            max_entry_bytes: self.max_entry_bytes,
            entries,
            other_entries: self.report.other_entries,
            too_large: self.report.too_large.clone(),
            broken: self.broken.clone(),
        };
        let json = serde_json::to_vec(&saved)
            .map_err(|e| MusicScoreError::Invalid(format!("archive index: {e}")))?;
        std::fs::create_dir_all(cache).map_err(io(cache))?;
        score_core::fs::write_atomic(&file, &json)?;
        Ok(())
    }

    /// The index saved under `cache` for `path`, if there is one for this very file
    /// (same size and modification time) and entry-size limit, and it is sound (its
    /// digest matches and its entries are possible); else `None`, and the caller
    /// indexes the archive afresh.
    pub fn load_cached(
        path: &Path,
        cache: &Path,
        max_entry_bytes: u64,
        checkpoint_every: u64,
    ) -> Option<ArchiveIndex> {
        let (file, size, mtime_ns) = Self::cache_key(path, cache)?;
        let saved: SavedIndex =
            serde_json::from_slice(&score_core::fs::read_file(&file).ok()?).ok()?;
        let fresh = saved.format == SAVED_FORMAT
            && saved.size == size
            && saved.mtime_ns == mtime_ns
            && saved.max_entry_bytes == max_entry_bytes
            && saved.is_sound();
        fresh.then(|| ArchiveIndex {
            path: path.to_path_buf(),
            entries: saved
                .entries
                .into_iter()
                .map(|(name, offset, size)| Entry { name, offset, size })
                .collect(),
            report: WalkReport {
                other_entries: saved.other_entries,
                too_large: saved.too_large,
            },
            checkpoints: if checkpoint_every == 0 {
                OnceLock::from(Vec::new())
            } else {
                OnceLock::new()
            },
            max_entry_bytes,
            checkpoint_every,
            broken: saved.broken,
        })
    }

    /// The bytes of entry `i`.
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        let e = self.entries.get(i).ok_or_else(|| {
            MusicScoreError::Invalid(format!(
                "{}: entry {i} of {}",
                self.path.display(),
                self.entries.len()
            ))
        })?;
        let mut file = score_core::fs::open_file(&self.path)?;
        let err =
            |what: std::io::Error| archive_err(&self.path, format!("entry '{}': {what}", e.name));
        if e.size > self.max_entry_bytes {
            return Err(archive_err(
                &self.path,
                format!(
                    "entry '{}': the index gives {} bytes, above the entry limit of {}",
                    e.name, e.size, self.max_entry_bytes
                ),
            ));
        }
        let mut bytes = vec![0u8; e.size as usize];
        if is_plain_tar(&self.path) {
            file.seek(SeekFrom::Start(e.offset)).map_err(err)?;
            file.read_exact(&mut bytes).map_err(err)?;
            return Ok(bytes);
        }
        let checkpoints = self.checkpoint_list();
        let k = checkpoints.partition_point(|c| c.out_pos <= e.offset);
        let mut gz: Box<dyn Read> = if k == 0 {
            Box::new(GzReader::new(BufReader::new(file)))
        } else {
            let cp = &checkpoints[k - 1];
            file.seek(SeekFrom::Start(cp.in_pos)).map_err(err)?;
            Box::new(GzReader::resume(BufReader::new(file), cp))
        };
        let start = if k == 0 {
            0
        } else {
            checkpoints[k - 1].out_pos
        };
        std::io::copy(&mut (&mut gz).take(e.offset - start), &mut std::io::sink()).map_err(err)?;
        gz.read_exact(&mut bytes).map_err(err)?;
        Ok(bytes)
    }
}
