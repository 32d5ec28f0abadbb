//! Opening a MusicScore layout: pages, metadata, the join, and what went wrong.
//!
//! The published layouts (spec: `shared/papers/musicscore.md`):
//!
//! ```text
//! MisicScore-400/metadata.json          MusicScore-14K/metadata.json
//! MisicScore-400/train/IMSLP…_1.jpg     MusicScore-14K/train.tar.gz
//! MisicScore-400/val/…                  MusicScore-14K/val.tar.gz
//! MisicScore-400/test/…                 MusicScore-14K/test.tar.gz
//! ```
//!
//! plus older names (`misicscore-toy`, `musicscore-14K/hd_data_14k.json`,
//! `musicscore-200k/hd_data_old.json`). [`Corpus::open`] recognises a layout by its
//! structure, not its name: split folders (`train`, `val`/`valid`/`validation`, `test`)
//! of images, `<split>.tar.gz` / `.tgz` / `.tar` archives, or images directly in the
//! folder; and any of [`crate::metadata::METADATA_FILE_NAMES`]. [`find_layouts`] finds
//! the layouts under a download folder.
//!
//! Bad input never aborts silently and never panics: with [`OnError::Fail`] the first
//! problem is returned as an error naming the file; with [`OnError::Skip`] the page is
//! left out and the reason is recorded in [`Report::skipped`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::archive::{self, ArchiveIndex};
use crate::error::{MusicScoreError, Result, io};
use crate::image::{PageFacts, page_facts};
use crate::metadata::{Fields, Metadata, RecordTarget, find_metadata_file, load_metadata};
use crate::name::{PageName, base_name, has_image_extension, parse_page_name};

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training pages.
    Train,
    /// Validation pages.
    Val,
    /// Test pages.
    Test,
    /// Pages not in a split folder or archive.
    Unsplit,
}

impl Split {
    /// The three published splits.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The folder / archive name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::Unsplit => "unsplit",
        }
    }

    /// Recognise a split folder or archive stem.
    pub fn parse(s: &str) -> Option<Split> {
        match s.to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" | "testing" => Some(Split::Test),
            _ => None,
        }
    }
}

/// What to do with a page or file that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Return the first problem as an error.
    Fail,
    /// Leave the item out and record why in [`Report::skipped`].
    #[default]
    Skip,
}

/// Options of [`Corpus::open`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Fail or skip on bad items.
    pub on_error: OnError,
    /// Decode every page once (at 1/8 scale) to measure [`PageFacts`]: size, ink,
    /// hashes. Needed by size/ink/blank/duplicate filters and image statistics, and the
    /// way to find corrupt images up front.
    pub facts: bool,
    /// Archive entries larger than this are skipped.
    pub max_entry_bytes: u64,
    /// Inflater checkpoint spacing for archive random access.
    pub checkpoint_every: u64,
    /// Pages larger than this many pixels are refused.
    pub max_pixels: u64,
    /// Called with the number of pages read so far (for progress displays).
    pub progress: Option<Progress>,
    /// Where archive indexes are saved and reused ([`ArchiveIndex::save_cached`]);
    /// `None` builds every index afresh. Default: `<scorelab cache>/musicscore-index`.
    pub index_cache: Option<PathBuf>,
}

/// A progress callback: pages read so far.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Pages decoded together when measuring facts of archive entries.
const FACTS_CHUNK: usize = 64;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            on_error: OnError::Skip,
            facts: false,
            max_entry_bytes: archive::DEFAULT_MAX_ENTRY_BYTES,
            checkpoint_every: archive::DEFAULT_CHECKPOINT_EVERY,
            max_pixels: crate::image::DecodeOptions::default().max_pixels,
            progress: None,
            index_cache: Some(archive::default_index_cache()),
        }
    }
}

/// Where a page's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageSource {
    /// A loose file.
    File(PathBuf),
    /// Entry `entry` of archive `archive` ([`Corpus::archives`]).
    Archive {
        /// Index into [`Corpus::archives`].
        archive: usize,
        /// Index into that archive's entries.
        entry: usize,
    },
}

/// One page image.
#[derive(Debug, Clone)]
pub struct Page {
    /// File name (no folder).
    pub file_name: String,
    /// Parsed IMSLP id and page.
    pub name: PageName,
    /// Split it was published in.
    pub split: Split,
    /// Where its bytes are.
    pub source: PageSource,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Index of its metadata record, if any.
    pub record: Option<usize>,
    /// Measured facts, when opened with `facts`.
    pub facts: Option<PageFacts>,
}

/// An item left out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    /// The file or `archive:entry`.
    pub source: String,
    /// The reason.
    pub reason: String,
}

/// What did not read or did not match.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Items left out (unparseable names, unreadable images, too-large entries, an
    /// unreadable metadata file).
    pub skipped: Vec<Skip>,
    /// Pages with no metadata record.
    pub unmatched_pages: Vec<String>,
    /// Records that no page points to (including records with no usable id).
    pub unmatched_records: Vec<String>,
    /// Oddities in the metadata file.
    pub metadata_issues: Vec<String>,
    /// Why the metadata file could not be read, when it was skipped: every page is then
    /// without its record (captions, instruments, keys), which callers must say.
    pub metadata_error: Option<String>,
    /// Archive entries that are not images (folders, text files).
    pub other_archive_entries: usize,
}

/// The storage of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// Loose image files (MisicScore-400).
    Folders,
    /// `<split>.tar.gz` archives (MusicScore-14K, -200k).
    Archives,
    /// Both.
    Mixed,
}

/// One opened layout.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The layout folder.
    pub root: PathBuf,
    /// How its pages are stored.
    pub kind: LayoutKind,
    /// Its metadata, if a metadata file was found and read.
    pub metadata: Option<Metadata>,
    /// Pages, sorted by split, IMSLP id and page.
    pub pages: Vec<Page>,
    /// Archive indexes.
    pub archives: Vec<ArchiveIndex>,
    /// Problems met.
    pub report: Report,
}

fn is_layout(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        (p.is_dir() && Split::parse(&n).is_some())
            || (p.is_file() && archive::is_archive_name(&n) && split_of_archive(&n).is_some())
            || (p.is_file() && has_image_extension(&n))
    }) || find_metadata_file(dir).is_some()
}

fn split_of_archive(name: &str) -> Option<Split> {
    let l = name.to_ascii_lowercase();
    let stem = l
        .strip_suffix(".tar.gz")
        .or_else(|| l.strip_suffix(".tgz"))
        .or_else(|| l.strip_suffix(".tar"))?;
    Split::parse(stem)
}

/// `dir` itself when it is a layout, else the layouts among its sub-folders (sorted).
pub fn find_layouts(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(MusicScoreError::Layout {
            path: dir.to_path_buf(),
            message: "not a folder".into(),
        });
    }
    if is_layout(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && is_layout(p))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(MusicScoreError::Layout {
            path: dir.to_path_buf(),
            message: "no MusicScore layout here: expected train/val/test folders of IMSLP*.jpg, \
                      {train,val,test}.tar.gz, or metadata.json (or sub-folders holding them, \
                      such as MisicScore-400 or MusicScore-14K)"
                .into(),
        });
    }
    Ok(found)
}

/// `path` or `archive:entry`, for messages.
fn describe(source: &PageSource, archives: &[ArchiveIndex]) -> String {
    match source {
        PageSource::File(p) => p.display().to_string(),
        PageSource::Archive { archive, entry } => format!(
            "{}:{}",
            archives[*archive].path.display(),
            archives[*archive].entries[*entry].name
        ),
    }
}

struct Found {
    file_name: String,
    split: Split,
    source: PageSource,
    bytes: u64,
    facts: Option<PageFacts>,
}

impl Corpus {
    /// Open one layout folder (see the module docs).
    pub fn open(root: &Path, opts: &OpenOptions) -> Result<Corpus> {
        if !root.is_dir() {
            return Err(MusicScoreError::Layout {
                path: root.to_path_buf(),
                message: "not a folder".into(),
            });
        }
        let mut report = Report::default();
        let mut broken_metadata: Option<String> = None;
        let metadata = match find_metadata_file(root) {
            Some(p) => match load_metadata(&p) {
                Ok(m) => Some(m),
                Err(e) => {
                    broken_metadata = Some(e.to_string());
                    skip_or_fail(opts, &mut report, p.display().to_string(), e)?;
                    report.metadata_error = broken_metadata.clone();
                    None
                }
            },
            None => None,
        };
        let (files, archive_paths) = list_layout(root)?;
        if files.is_empty() && archive_paths.is_empty() && metadata.is_none() {
            let meta = match broken_metadata {
                Some(e) => format!("a metadata file that cannot be read ({e})"),
                None => "no metadata file".into(),
            };
            return Err(MusicScoreError::Layout {
                path: root.to_path_buf(),
                message: format!(
                    "no train/val/test folders, no {{train,val,test}}.tar.gz, no images and {meta}"
                ),
            });
        }
        let kind = match (files.is_empty(), archive_paths.is_empty()) {
            (false, false) => LayoutKind::Mixed,
            (true, false) => LayoutKind::Archives,
            _ => LayoutKind::Folders,
        };
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = || {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Some(Progress(f)) = &opts.progress
                && n.is_multiple_of(16)
            {
                f(n);
            }
        };
        let mut found = measure_files(&files, opts, &tick, &mut report)?;
        let mut archives = Vec::new();
        for (path, split) in archive_paths {
            let a = archives.len();
            if let Some(idx) = read_archive(&path, split, a, opts, &tick, &mut report, &mut found)?
            {
                archives.push(idx);
            }
        }
        let mut pages = name_pages(found, &archives, opts, &mut report)?;
        if let Some(m) = &metadata {
            join_records(m, &mut pages, &mut report);
        }
        report.unmatched_pages = pages
            .iter()
            .filter(|p| p.record.is_none())
            .map(|p| p.file_name.clone())
            .collect();
        Ok(Corpus {
            root: root.to_path_buf(),
            kind,
            metadata,
            pages,
            archives,
            report,
        })
    }

    /// The folder name (`MisicScore-400`, …).
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.root.display().to_string())
    }

    /// Page `i`, or an error naming the layout when `i` is past its pages.
    pub fn page(&self, i: usize) -> Result<&Page> {
        self.pages.get(i).ok_or_else(|| {
            MusicScoreError::Invalid(format!(
                "{}: page index {i} is past its {} pages",
                self.root.display(),
                self.pages.len()
            ))
        })
    }

    /// Tidy fields of page `i` (empty when it has no record or does not exist).
    pub fn fields(&self, i: usize) -> Fields {
        let record = self.pages.get(i).and_then(|p| p.record);
        match (record, &self.metadata) {
            (Some(r), Some(m)) => m
                .records
                .get(r)
                .map(|r| r.fields.clone())
                .unwrap_or_default(),
            _ => Fields::default(),
        }
    }

    /// Where page `i` comes from, for messages.
    pub fn source_name(&self, i: usize) -> String {
        match self.pages.get(i) {
            Some(p) => describe(&p.source, &self.archives),
            None => format!("{}: page {i} (no such page)", self.root.display()),
        }
    }

    /// The bytes of page `i` (random access; archive pages go through the index).
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        match &self.page(i)?.source {
            PageSource::File(p) => Ok(score_core::fs::read_file(p)?),
            PageSource::Archive { archive, entry } => self.archives[*archive].read(*entry),
        }
    }

    /// Call `f(i, bytes)` for the pages in `indices`, reading each archive once in
    /// order instead of seeking (the fast path for export, statistics and previews).
    /// The calls come in archive order, not in `indices` order.
    pub fn for_each_bytes(
        &self,
        indices: &[usize],
        mut f: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut wanted: Vec<HashMap<usize, usize>> = vec![HashMap::new(); self.archives.len()];
        for &i in indices {
            match &self.page(i)?.source {
                PageSource::File(p) => f(i, score_core::fs::read_file(p)?)?,
                PageSource::Archive { archive, entry } => {
                    wanted[*archive].insert(*entry, i);
                }
            }
        }
        for (a, want) in wanted.iter().enumerate() {
            if want.is_empty() {
                continue;
            }
            let idx = &self.archives[a];
            let mut k = 0usize;
            let mut left = want.len();
            archive::stream_pages(&idx.path, u64::MAX, |e, bytes| {
                // Entries come in the same order as the index; match by offset.
                while k < idx.entries.len() && idx.entries[k].offset < e.offset {
                    k += 1;
                }
                if k < idx.entries.len()
                    && idx.entries[k].offset == e.offset
                    && let Some(&i) = want.get(&k)
                {
                    f(i, bytes)?;
                    left -= 1;
                }
                Ok(left > 0)
            })?;
        }
        Ok(())
    }
}

/// With [`OnError::Skip`], record `err` of `source` in the report and go on; with
/// [`OnError::Fail`], return it.
fn skip_or_fail(
    opts: &OpenOptions,
    report: &mut Report,
    source: String,
    err: MusicScoreError,
) -> Result<()> {
    match opts.on_error {
        OnError::Fail => Err(err),
        OnError::Skip => {
            let msg = err.to_string();
            let reason = msg
                .strip_prefix(&format!("{source}: "))
                .unwrap_or(&msg)
                .to_string();
            report.skipped.push(Skip { source, reason });
            Ok(())
        }
    }
}

/// The loose page images (in split folders or the root) and the split archives of a
/// layout, sorted by path.
#[allow(clippy::type_complexity)]
fn list_layout(root: &Path) -> Result<(Vec<(PathBuf, Split)>, Vec<(PathBuf, Split)>)> {
    let mut entries: Vec<(PathBuf, String)> = std::fs::read_dir(root)
        .map_err(io(root))?
        .flatten()
        .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
        .collect();
    entries.sort();
    let mut files: Vec<(PathBuf, Split)> = Vec::new();
    let mut archive_paths: Vec<(PathBuf, Split)> = Vec::new();
    for (path, name) in &entries {
        if path.is_dir() {
            if let Some(split) = Split::parse(name) {
                let mut inner: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(io(path))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                inner.sort();
                files.extend(inner.into_iter().map(|p| (p, split)));
            }
        } else if archive::is_archive_name(name) {
            if let Some(split) = split_of_archive(name) {
                archive_paths.push((path.clone(), split));
            }
        } else if has_image_extension(name) {
            files.push((path.clone(), Split::Unsplit));
        }
    }
    files.retain(|(p, _)| has_image_extension(&p.to_string_lossy()));
    Ok((files, archive_paths))
}

/// The loose files' sizes (and facts, when asked), measured in parallel; a file that
/// fails is skipped or fails the open.
fn measure_files(
    files: &[(PathBuf, Split)],
    opts: &OpenOptions,
    tick: &(dyn Fn() + Sync),
    report: &mut Report,
) -> Result<Vec<Found>> {
    let measured: Vec<Result<Found>> = files
        .par_iter()
        .map(|(p, split)| {
            tick();
            let meta = std::fs::metadata(p).map_err(io(p))?;
            let facts = if opts.facts {
                let bytes = score_core::fs::read_file(p)?;
                Some(page_facts(
                    &bytes,
                    opts.max_pixels,
                    &p.display().to_string(),
                )?)
            } else {
                None
            };
            Ok(Found {
                file_name: base_name(&p.to_string_lossy()).to_string(),
                split: *split,
                source: PageSource::File(p.clone()),
                bytes: meta.len(),
                facts,
            })
        })
        .collect();
    let mut found = Vec::new();
    for ((p, _), m) in files.iter().zip(measured) {
        match m {
            Ok(f) => found.push(f),
            Err(e) => skip_or_fail(opts, report, p.display().to_string(), e)?,
        }
    }
    Ok(found)
}

/// Facts of an archive's entries, one per entry (`None` when not measured).
type EntryFacts = Vec<Result<Option<PageFacts>>>;

/// The index of the archive at `path`, from the cache or built by one pass (measuring
/// the entries' facts in parallel chunks while the reading thread goes on when asked),
/// and whether it was built.
fn index_archive(
    path: &Path,
    opts: &OpenOptions,
    tick: &(dyn Fn() + Sync),
) -> (Result<ArchiveIndex>, EntryFacts, bool) {
    let mut entry_facts: EntryFacts = Vec::new();
    let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
    let measure = |chunk: &mut Vec<(String, Vec<u8>)>, out: &mut Vec<Result<Option<PageFacts>>>| {
        let r: Vec<Result<Option<PageFacts>>> = chunk
            .par_iter()
            .map(|(src, b)| page_facts(b, opts.max_pixels, src).map(Some))
            .collect();
        out.extend(r);
        chunk.clear();
    };
    let keep_partial = opts.on_error == OnError::Skip;
    let cached = match (&opts.index_cache, opts.facts) {
        (Some(cache), false) => {
            ArchiveIndex::load_cached(path, cache, opts.max_entry_bytes, opts.checkpoint_every)
        }
        _ => None,
    };
    let built = cached.is_none();
    let idx = cached.map(Ok).unwrap_or_else(|| {
        ArchiveIndex::build(
            path,
            opts.max_entry_bytes,
            opts.checkpoint_every,
            keep_partial,
            |e, bytes| {
                tick();
                if opts.facts {
                    chunk.push((format!("{}:{}", path.display(), e.name), bytes.to_vec()));
                    if chunk.len() == FACTS_CHUNK {
                        measure(&mut chunk, &mut entry_facts);
                    }
                } else {
                    entry_facts.push(Ok(None));
                }
            },
        )
    });
    measure(&mut chunk, &mut entry_facts);
    (idx, entry_facts, built)
}

/// Index archive number `a` at `path` (from the cache when it holds it), measure its
/// entries' facts when asked, and add its pages to `found`; `None` when the archive was
/// skipped.
fn read_archive(
    path: &Path,
    split: Split,
    a: usize,
    opts: &OpenOptions,
    tick: &(dyn Fn() + Sync),
    report: &mut Report,
    found: &mut Vec<Found>,
) -> Result<Option<ArchiveIndex>> {
    let (idx, mut entry_facts, built) = index_archive(path, opts, tick);
    let idx = match idx {
        Ok(i) => i,
        Err(e) => {
            skip_or_fail(opts, report, path.display().to_string(), e)?;
            return Ok(None);
        }
    };
    if built {
        if let Some(cache) = &opts.index_cache {
            // A cache that cannot be written only costs the next open a pass.
            let _ = idx.save_cached(cache);
        }
    } else {
        entry_facts = idx.entries.iter().map(|_| Ok(None)).collect();
    }
    if let Some(why) = &idx.broken {
        let source = path.display().to_string();
        let why = why.strip_prefix(&format!("{source}: ")).unwrap_or(why);
        report.skipped.push(Skip {
            source,
            reason: format!(
                "{why}; the {} page(s) before the break are kept, the rest of the archive is lost",
                idx.entries.len()
            ),
        });
    }
    report.other_archive_entries += idx.report.other_entries;
    for (name, size) in &idx.report.too_large {
        skip_or_fail(
            opts,
            report,
            format!("{}:{name}", path.display()),
            MusicScoreError::Archive {
                path: path.to_path_buf(),
                message: format!(
                    "entry '{name}' of {size} bytes exceeds the limit of {}",
                    opts.max_entry_bytes
                ),
            },
        )?;
    }
    for (i, (e, facts)) in idx.entries.iter().zip(entry_facts).enumerate() {
        match facts {
            Ok(facts) => found.push(Found {
                file_name: base_name(&e.name).to_string(),
                split,
                source: PageSource::Archive {
                    archive: a,
                    entry: i,
                },
                bytes: e.size,
                facts,
            }),
            Err(err) => skip_or_fail(opts, report, format!("{}:{}", path.display(), e.name), err)?,
        }
    }
    Ok(Some(idx))
}

/// Parse every found file's name into a page (skipping or failing on bad names), in
/// (split, name) order.
fn name_pages(
    found: Vec<Found>,
    archives: &[ArchiveIndex],
    opts: &OpenOptions,
    report: &mut Report,
) -> Result<Vec<Page>> {
    let mut pages = Vec::new();
    for f in found {
        match parse_page_name(&f.file_name) {
            Ok(name) => pages.push(Page {
                file_name: f.file_name,
                name,
                split: f.split,
                source: f.source,
                bytes: f.bytes,
                record: None,
                facts: f.facts,
            }),
            Err(e) => skip_or_fail(opts, report, describe(&f.source, archives), e)?,
        }
    }
    pages.sort_by_key(|p| (p.split, p.name));
    Ok(pages)
}

/// Join pages to the records of `m` (a page record wins over a file record) and report
/// the records no page uses.
fn join_records(m: &Metadata, pages: &mut [Page], report: &mut Report) {
    report.metadata_issues = m.issues.clone();
    let mut by_page = HashMap::new();
    let mut by_file = HashMap::new();
    for (i, r) in m.records.iter().enumerate() {
        match r.target {
            RecordTarget::Page { file_id, page } => {
                by_page.entry((file_id, page)).or_insert(i);
            }
            RecordTarget::File { file_id } => {
                by_file.entry(file_id).or_insert(i);
            }
            RecordTarget::Unknown => {}
        }
    }
    let mut used = vec![false; m.records.len()];
    for p in pages.iter_mut() {
        p.record = by_page
            .get(&(p.name.file_id, p.name.page))
            .or_else(|| by_file.get(&p.name.file_id))
            .copied();
        if let Some(r) = p.record {
            used[r] = true;
        }
    }
    report.unmatched_records = m
        .records
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| {
            if r.key.is_empty() {
                "(record without id)".to_string()
            } else {
                r.key.clone()
            }
        })
        .collect();
}
