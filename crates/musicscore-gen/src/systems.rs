//! The staff systems a text-to-score run trains or is measured on: every layout under a
//! root opened, its pages selected, their systems cut at a geometry; and [`Feedback`],
//! how the pipelines of this crate report progress without printing anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use musicscore_data::corpus::{Corpus, OnError, OpenOptions, Progress, find_layouts};
use musicscore_data::prompt::Template;
use musicscore_data::select::Filter;
use musicscore_data::{MusicScoreError, Result};

use crate::textscore::{Geometry, SystemItem, system_items};

/// What the pipelines of this crate report while they work. Every method does nothing
/// by default; a command line draws bars and prints warnings from them.
pub trait Feedback: Send + Sync {
    /// `pages` pages of `layout` read so far.
    fn reading(&self, _layout: &Path, _pages: u64) {}
    /// `layout` is open.
    fn read(&self, _layout: &Path) {}
    /// `done` of the `total` selected pages of `layout` cut into systems.
    fn cutting(&self, _layout: &Path, _done: u64, _total: u64) {}
    /// Every selected page of `layout` is cut.
    fn cut(&self, _layout: &Path) {}
    /// Step `i` of `n` of a long computation named `what` (sampling, features).
    fn step(&self, _what: &str, _i: u64, _n: u64) {}
    /// The computation named `what` is done.
    fn done(&self, _what: &str) {}
    /// Something the user should know that does not stop the work.
    fn warn(&self, _message: &str) {}
    /// A summary line about the work (the data a run trains on).
    fn note(&self, _message: &str) {}
    /// Whether training should draw score-train's progress bar.
    fn training_bar(&self) -> bool {
        false
    }
}

/// Feedback that reports nothing.
pub struct Silent;

impl Feedback for Silent {}

/// Where the systems come from: a layout folder or a folder of several, what to do with
/// unreadable pages, and which pages to keep.
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    /// A layout folder (MisicScore-400, MusicScore-14K, …) or a folder holding several.
    pub root: PathBuf,
    /// Skip unreadable pages (counted) or fail on the first.
    pub on_error: OnError,
    /// The pages to keep.
    pub filter: Filter,
}

impl CorpusSpec {
    /// Every page of every layout under `root`, unreadable ones skipped.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            on_error: OnError::Skip,
            filter: Filter::default(),
        }
    }

    /// The same, keeping only the published `split` when the filter names none.
    pub fn with_default_split(&self, split: musicscore_data::corpus::Split) -> Self {
        let mut s = self.clone();
        if s.filter.splits.is_empty() {
            s.filter.splits = vec![split];
        }
        s
    }
}

/// Open each layout folder in `dirs`; `facts` measures every page (size and ink
/// filters need it). A layout whose metadata file cannot be read is opened without it,
/// with a warning.
pub fn open_layouts(
    dirs: Vec<PathBuf>,
    on_error: OnError,
    facts: bool,
    fb: &Arc<dyn Feedback>,
) -> Result<Vec<Corpus>> {
    let mut out = Vec::new();
    for dir in dirs {
        let (f, d) = (fb.clone(), dir.clone());
        let opts = OpenOptions {
            on_error,
            facts,
            progress: Some(Progress(Arc::new(move |n: u64| f.reading(&d, n)))),
            ..Default::default()
        };
        let c = Corpus::open(&dir, &opts);
        fb.read(&dir);
        let c = c?;
        if let Some(why) = &c.report.metadata_error {
            // Skipping a metadata file loses every page's record: never silently.
            fb.warn(&format!(
                "{why}; the pages of {} are read without their metadata (no captions, instruments or keys); fix the file, or pass --on-error fail to stop here",
                dir.display()
            ));
        }
        out.push(c);
    }
    Ok(out)
}

/// The systems of a corpus at one geometry.
pub struct Systems {
    /// Every system that fits the canvas, with its prompt.
    pub items: Vec<SystemItem>,
    /// Systems left out because they are taller than the canvas.
    pub too_tall: usize,
    /// The layouts read and how many pages of each were kept.
    pub corpus: String,
}

/// The systems of the selected pages of every layout under `spec.root`, cut at `g`,
/// each with its page's prompt under `template`.
pub fn load_systems(
    spec: &CorpusSpec,
    g: &Geometry,
    template: &Template,
    fb: &Arc<dyn Feedback>,
) -> Result<Systems> {
    let mut items = Vec::new();
    let mut too_tall = 0;
    let mut names = Vec::new();
    let facts = spec.filter.needs_facts();
    for corpus in open_layouts(find_layouts(&spec.root)?, spec.on_error, facts, fb)? {
        let keep = spec.filter.apply(&corpus)?;
        let total = keep.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = || {
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            fb.cutting(&corpus.root, d, total);
        };
        let cut = system_items(&corpus, &keep, g, template, &tick);
        fb.cut(&corpus.root);
        let (i, t) = cut?;
        names.push(format!("{} ({} pages)", corpus.root.display(), keep.len()));
        items.extend(i);
        too_tall += t;
    }
    if items.is_empty() {
        return Err(MusicScoreError::Invalid(format!(
            "{}: no staff systems found in the selected pages",
            spec.root.display()
        )));
    }
    Ok(Systems {
        items,
        too_tall,
        corpus: names.join("; "),
    })
}
