//! Filters, group-aware splits and statistics.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::corpus::{Corpus, Page, Split};
use crate::error::{MusicScoreError, Result};
use crate::metadata::Fields;
use crate::prompt::unit_hash;

/// Ink ratio under which a page counts as blank. A blank 200 dpi scan measures
/// 0.000–0.002 (paper tone aside); the sparsest page of the shipped corpus (one
/// system of a chorale) measures 0.017 (docs/musicscore-data.md).
pub const BLANK_INK: f64 = 0.005;

/// Which pages to keep. Text matches are case-insensitive substrings of the tidy field
/// (`instrument` matches any listed instrument: "violin" matches "2 violins").
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Composer contains.
    pub composer: Option<String>,
    /// An instrument contains.
    pub instrument: Option<String>,
    /// Key contains ("minor", "A-flat").
    pub key: Option<String>,
    /// Piece style contains.
    pub style: Option<String>,
    /// Composer period contains.
    pub period: Option<String>,
    /// Page numbers, inclusive.
    pub pages: Option<(u32, u32)>,
    /// Splits to keep (empty: all).
    pub splits: Vec<Split>,
    /// Minimum width and height in pixels (needs facts).
    pub min_size: Option<(usize, usize)>,
    /// Maximum width and height in pixels (needs facts).
    pub max_size: Option<(usize, usize)>,
    /// Ink ratio range (needs facts).
    pub ink: Option<(f64, f64)>,
    /// Drop pages with ink below [`BLANK_INK`] (needs facts).
    pub drop_blank: bool,
    /// Drop exact (same bytes) and visual (same 64-bit dHash) duplicates, keeping the
    /// first in page order (needs facts).
    pub drop_duplicates: bool,
    /// Keep only pages with a metadata record.
    pub matched_only: bool,
}

fn contains(hay: &Option<String>, needle: &Option<String>) -> bool {
    match needle {
        None => true,
        Some(n) => hay
            .as_ref()
            .is_some_and(|h| h.to_lowercase().contains(&n.to_lowercase())),
    }
}

impl Filter {
    /// True when a filter needs [`crate::image::PageFacts`].
    pub fn needs_facts(&self) -> bool {
        self.min_size.is_some()
            || self.max_size.is_some()
            || self.ink.is_some()
            || self.drop_blank
            || self.drop_duplicates
    }

    /// Indices of the pages kept, in page order. Errors when a filter needs facts that
    /// the corpus was opened without.
    pub fn apply(&self, corpus: &Corpus) -> Result<Vec<usize>> {
        if self.needs_facts() && corpus.pages.iter().any(|p| p.facts.is_none()) {
            return Err(MusicScoreError::Invalid(format!(
                "{}: size, ink, blank and duplicate filters need page facts: open with facts",
                corpus.root.display()
            )));
        }
        let mut seen_bytes = HashSet::new();
        let mut seen_look = HashSet::new();
        let mut keep = Vec::new();
        for (i, p) in corpus.pages.iter().enumerate() {
            let f = corpus.fields(i);
            let instr_ok = match &self.instrument {
                None => true,
                Some(n) => {
                    let n = n.to_lowercase();
                    f.instrumentation.iter().any(|x| x.contains(&n))
                }
            };
            let ok = contains(&f.composer, &self.composer)
                && instr_ok
                && contains(&f.key, &self.key)
                && contains(&f.style, &self.style)
                && contains(&f.period, &self.period)
                && self
                    .pages
                    .is_none_or(|(a, b)| (a..=b).contains(&p.name.page))
                && (self.splits.is_empty() || self.splits.contains(&p.split))
                && (!self.matched_only || p.record.is_some());
            if !ok {
                continue;
            }
            if let Some(facts) = &p.facts {
                let size_ok = self
                    .min_size
                    .is_none_or(|(w, h)| facts.width >= w && facts.height >= h)
                    && self
                        .max_size
                        .is_none_or(|(w, h)| facts.width <= w && facts.height <= h);
                let ink_ok = self
                    .ink
                    .is_none_or(|(a, b)| facts.ink >= a && facts.ink <= b)
                    && (!self.drop_blank || facts.ink >= BLANK_INK);
                if !(size_ok && ink_ok) {
                    continue;
                }
                if self.drop_duplicates {
                    let new_bytes = seen_bytes.insert(facts.content_hash);
                    let new_look = seen_look.insert(facts.dhash);
                    if !(new_bytes && new_look) {
                        continue;
                    }
                }
            }
            keep.push(i);
        }
        Ok(keep)
    }
}

/// What pages must stay together in a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// Pages of one IMSLP file (PDF), as the spec requires.
    #[default]
    File,
    /// Pages of one work (same composer and title): stricter, no two editions of a
    /// work in two splits.
    Work,
}

/// Seeded group-aware split of `indices` into train/val/test with the given fractions
/// (of pages). Groups are shuffled by a hash of `(seed, group)` and filled into train,
/// then val, then test, each until its share of pages is reached; every split gets at
/// least one group when there are at least three groups.
pub fn group_split(
    corpus: &Corpus,
    indices: &[usize],
    fractions: [f64; 3],
    seed: u64,
    by: GroupBy,
) -> Result<[Vec<usize>; 3]> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !(*f >= 0.0)) || !((total - 1.0).abs() < 1e-9) {
        return Err(MusicScoreError::Invalid(format!(
            "split fractions {fractions:?} must be non-negative and sum to 1"
        )));
    }
    let key = |i: usize| -> String {
        match by {
            GroupBy::File => format!("file:{}", corpus.pages[i].name.file_id),
            GroupBy::Work => {
                let f = corpus.fields(i);
                match (&f.composer, &f.title) {
                    (Some(c), Some(t)) => format!("work:{c}|{t}"),
                    _ => format!("file:{}", corpus.pages[i].name.file_id),
                }
            }
        }
    };
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in indices {
        groups.entry(key(i)).or_default().push(i);
    }
    let mut order: Vec<(f64, Vec<usize>)> = groups
        .into_iter()
        .map(|(k, v)| {
            let h = k.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
            (unit_hash(seed, h, 0), v)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = indices.len() as f64;
    let g = order.len();
    let mut out: [Vec<usize>; 3] = Default::default();
    let mut s = 0usize;
    for (k, (_, pages)) in order.into_iter().enumerate() {
        // Move on when this split has its share of pages, or when the groups left are
        // just enough to give each later split that wants pages one group.
        let left = g - k;
        while s < 2 {
            let later = (s + 1..3).filter(|&j| fractions[j] > 0.0).count();
            let full = out[s].len() as f64 >= fractions[s] * n;
            let must = later > 0 && left <= later && (!out[s].is_empty() || fractions[s] == 0.0);
            if full || must {
                s += 1;
            } else {
                break;
            }
        }
        out[s].extend(pages);
    }
    Ok(out)
}

/// Counts of a text field, most common first.
pub type Counts = Vec<(String, usize)>;

/// Summary numbers of a selection of pages.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The layout folder name.
    pub layout: String,
    /// Pages.
    pub pages: usize,
    /// Pages per split.
    pub per_split: BTreeMap<String, usize>,
    /// Distinct IMSLP files (PDFs).
    pub files: usize,
    /// Distinct works (composer + title).
    pub works: usize,
    /// Metadata records, and records matched by a page.
    pub records: usize,
    /// Pages with a record.
    pub matched_pages: usize,
    /// Pages per file: min, median, max.
    pub pages_per_file: [usize; 3],
    /// Bytes of image data.
    pub bytes: u64,
    /// Composers.
    pub composers: Counts,
    /// Instruments (each listed instrument counted once per page).
    pub instruments: Counts,
    /// Keys.
    pub keys: Counts,
    /// Piece styles.
    pub styles: Counts,
    /// Composer periods.
    pub periods: Counts,
    /// Image sizes "W×H" (needs facts).
    pub sizes: Counts,
    /// Ink ratio min / median / max (needs facts).
    pub ink: Option<[f64; 3]>,
    /// Pages below [`BLANK_INK`] (needs facts).
    pub blank: Option<usize>,
    /// Pages whose bytes or dHash repeat an earlier page (needs facts).
    pub duplicates: Option<usize>,
    /// IMSLP files and works whose pages sit in more than one published split.
    pub split_leaks: SplitLeaks,
    /// Pages left out while opening, and unmatched counts.
    pub skipped: usize,
    /// Pages without a record.
    pub unmatched_pages: usize,
    /// Records without a page.
    pub unmatched_records: usize,
}

/// IMSLP files and works whose pages are in two or more of the published splits (train,
/// val, test): a leak between training and evaluation. Unsplit pages are not counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitLeaks {
    /// (IMSLP file id, the splits it appears in), ascending by id.
    pub files: Vec<(u64, Vec<String>)>,
    /// (work: "composer|title", or "file:<id>" without both, the splits), ascending.
    pub works: Vec<(String, Vec<String>)>,
}

/// The work a page belongs to: composer and title, or its file when either is missing.
fn work_key(p: &Page, f: &Fields) -> String {
    match (&f.composer, &f.title) {
        (Some(c), Some(t)) => format!("{c}|{t}"),
        _ => format!("file:{}", p.name.file_id),
    }
}

impl SplitLeaks {
    fn compute(pages: &[(&Page, Fields)]) -> Self {
        fn leaks<K: Ord + Clone>(it: impl Iterator<Item = (K, Split)>) -> Vec<(K, Vec<String>)> {
            let mut m: BTreeMap<K, std::collections::BTreeSet<Split>> = BTreeMap::new();
            for (k, s) in it.filter(|(_, s)| *s != Split::Unsplit) {
                m.entry(k).or_default().insert(s);
            }
            m.into_iter()
                .filter(|(_, s)| s.len() > 1)
                .map(|(k, s)| (k, s.iter().map(|x| x.name().to_string()).collect()))
                .collect()
        }
        SplitLeaks {
            files: leaks(pages.iter().map(|(p, _)| (p.name.file_id, p.split))),
            works: leaks(pages.iter().map(|(p, f)| (work_key(p, f), p.split))),
        }
    }

    /// True when nothing leaks.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.works.is_empty()
    }
}

fn counts(it: impl Iterator<Item = String>) -> Counts {
    let mut m: HashMap<String, usize> = HashMap::new();
    for s in it {
        *m.entry(s).or_default() += 1;
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn median_usize(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    if v.is_empty() { 0 } else { v[v.len() / 2] }
}

impl Stats {
    /// Statistics of the pages in `indices`.
    pub fn compute(corpus: &Corpus, indices: &[usize]) -> Stats {
        let pages: Vec<_> = indices
            .iter()
            .map(|&i| (&corpus.pages[i], corpus.fields(i)))
            .collect();
        let mut per_file: HashMap<u64, usize> = HashMap::new();
        for (p, _) in &pages {
            *per_file.entry(p.name.file_id).or_default() += 1;
        }
        let pf: Vec<usize> = per_file.values().copied().collect();
        let works: HashSet<String> = pages.iter().map(|(p, f)| work_key(p, f)).collect();
        let have_facts = pages.iter().all(|(p, _)| p.facts.is_some()) && !pages.is_empty();
        let (mut ink, mut blank, mut duplicates) = (None, None, None);
        if have_facts {
            let mut v: Vec<f64> = pages
                .iter()
                .filter_map(|(p, _)| p.facts.map(|f| f.ink))
                .collect();
            v.sort_by(f64::total_cmp);
            ink = Some([v[0], v[v.len() / 2], v[v.len() - 1]]);
            blank = Some(v.iter().filter(|&&x| x < BLANK_INK).count());
            let (mut a, mut b) = (HashSet::new(), HashSet::new());
            duplicates = Some(
                pages
                    .iter()
                    .filter_map(|(p, _)| p.facts)
                    .filter(|f| !(a.insert(f.content_hash) & b.insert(f.dhash)))
                    .count(),
            );
        }
        let records = corpus.metadata.as_ref().map_or(0, |m| m.records.len());
        Stats {
            layout: corpus.name(),
            pages: pages.len(),
            per_split: counts(pages.iter().map(|(p, _)| p.split.name().to_string()))
                .into_iter()
                .collect(),
            files: per_file.len(),
            works: works.len(),
            records,
            matched_pages: pages.iter().filter(|(p, _)| p.record.is_some()).count(),
            pages_per_file: [
                pf.iter().copied().min().unwrap_or(0),
                median_usize(pf.clone()),
                pf.iter().copied().max().unwrap_or(0),
            ],
            bytes: pages.iter().map(|(p, _)| p.bytes).sum(),
            composers: counts(pages.iter().filter_map(|(_, f)| f.composer.clone())),
            instruments: counts(pages.iter().flat_map(|(_, f)| f.instrumentation.clone())),
            keys: counts(pages.iter().filter_map(|(_, f)| f.key.clone())),
            styles: counts(pages.iter().filter_map(|(_, f)| f.style.clone())),
            periods: counts(pages.iter().filter_map(|(_, f)| f.period.clone())),
            sizes: counts(
                pages
                    .iter()
                    .filter_map(|(p, _)| p.facts.map(|f| format!("{}×{}", f.width, f.height))),
            ),
            ink,
            blank,
            duplicates,
            split_leaks: SplitLeaks::compute(&pages),
            skipped: corpus.report.skipped.len(),
            unmatched_pages: corpus.report.unmatched_pages.len(),
            unmatched_records: corpus.report.unmatched_records.len(),
        }
    }

    /// A Markdown summary.
    pub fn to_markdown(&self) -> String {
        let top = |c: &Counts, n: usize| -> String {
            let mut s: Vec<String> = c
                .iter()
                .take(n)
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            if c.len() > n {
                s.push(format!("… {} more", c.len() - n));
            }
            if s.is_empty() {
                "—".into()
            } else {
                s.join(", ")
            }
        };
        let splits: Vec<String> = self
            .per_split
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let mut out = format!(
            "### {}\n\n| | |\n|---|---|\n| pages | {} ({}) |\n| IMSLP files | {} (pages per file min/median/max {}/{}/{}) |\n| works | {} |\n| metadata records | {} |\n| pages with a record | {} |\n| image bytes | {:.2} MB |\n",
            self.layout,
            self.pages,
            splits.join(", "),
            self.files,
            self.pages_per_file[0],
            self.pages_per_file[1],
            self.pages_per_file[2],
            self.works,
            self.records,
            self.matched_pages,
            self.bytes as f64 / 1e6,
        );
        out += &format!("| composers | {} |\n", top(&self.composers, 8));
        out += &format!("| instruments | {} |\n", top(&self.instruments, 8));
        out += &format!("| keys | {} |\n", top(&self.keys, 6));
        out += &format!("| styles | {} |\n", top(&self.styles, 6));
        out += &format!("| periods | {} |\n", top(&self.periods, 6));
        if !self.sizes.is_empty() {
            out += &format!("| page sizes (px) | {} |\n", top(&self.sizes, 4));
        }
        if let Some([a, m, b]) = self.ink {
            out += &format!("| ink ratio min/median/max | {a:.4} / {m:.4} / {b:.4} |\n");
        }
        if let (Some(b), Some(d)) = (self.blank, self.duplicates) {
            out += &format!("| blank pages / duplicates | {b} / {d} |\n");
        }
        out += &format!(
            "| skipped / unmatched pages / unmatched records | {} / {} / {} |\n",
            self.skipped, self.unmatched_pages, self.unmatched_records
        );
        let l = &self.split_leaks;
        out += &format!(
            "| files / works in more than one split | {} / {}{} |\n",
            l.files.len(),
            l.works.len(),
            match (l.files.first(), l.works.first()) {
                (Some((id, s)), _) => format!(" (e.g. IMSLP{id} in {})", s.join(" and ")),
                (None, Some((w, s))) => format!(" (e.g. {w} in {})", s.join(" and ")),
                _ => String::new(),
            }
        );
        out
    }
}
