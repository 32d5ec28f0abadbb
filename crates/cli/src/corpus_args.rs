//! The MusicScore corpus flags and helpers the data commands (`musicscore.rs`) and the
//! text-to-score commands (`textscore_cmd.rs`) share: where the corpus is, how pages
//! are filtered, opening and selecting.

use anyhow::{Context, Result, bail};
use clap::Args;
use musicscore_data::corpus::{Corpus, OnError, Split, find_layouts};
use musicscore_data::select::Filter;
use std::path::PathBuf;

#[derive(Args)]
pub struct RootArgs {
    /// A layout folder (MisicScore-400, MusicScore-14K, …) or a folder holding several.
    #[arg(long)]
    pub(crate) root: PathBuf,
    /// What to do with unreadable pages: skip (counted and listed) or fail.
    #[arg(long, default_value = "skip")]
    pub(crate) on_error: String,
}

#[derive(Args, Clone)]
pub struct FilterArgs {
    /// Keep composers containing this (case-insensitive).
    #[arg(long)]
    pub(crate) composer: Option<String>,
    /// Keep pages with an instrument containing this ("violin" matches "2 violins").
    #[arg(long)]
    pub(crate) instrument: Option<String>,
    /// Keep keys containing this ("minor", "A-flat").
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Keep piece styles containing this.
    #[arg(long)]
    pub(crate) style: Option<String>,
    /// Keep composer periods containing this.
    #[arg(long)]
    pub(crate) period: Option<String>,
    /// Keep page numbers A-B (inclusive).
    #[arg(long)]
    pub(crate) pages: Option<String>,
    /// Keep these published splits (comma-separated: train,val,test).
    #[arg(long)]
    pub(crate) split: Option<String>,
    /// Keep pages at least WxH pixels.
    #[arg(long)]
    pub(crate) min_size: Option<String>,
    /// Keep pages at most WxH pixels.
    #[arg(long)]
    pub(crate) max_size: Option<String>,
    /// Keep ink ratios A-B.
    #[arg(long)]
    pub(crate) ink: Option<String>,
    /// Drop blank pages.
    #[arg(long)]
    pub(crate) drop_blank: bool,
    /// Drop exact and visual duplicates.
    #[arg(long)]
    pub(crate) drop_duplicates: bool,
    /// Keep only pages with a metadata record.
    #[arg(long)]
    pub(crate) matched_only: bool,
}

pub(crate) fn on_error(s: &str) -> Result<OnError> {
    Ok(match s {
        "skip" => OnError::Skip,
        "fail" => OnError::Fail,
        other => bail!("--on-error: '{other}' is not skip or fail"),
    })
}

impl FilterArgs {
    pub(crate) fn filter(&self) -> Result<Filter> {
        let splits = match &self.split {
            None => Vec::new(),
            Some(s) => s
                .split(',')
                .map(|x| {
                    Split::parse(x.trim()).with_context(|| format!("--split: unknown split '{x}'"))
                })
                .collect::<Result<_>>()?,
        };
        Ok(Filter {
            composer: self.composer.clone(),
            instrument: self.instrument.clone(),
            key: self.key.clone(),
            style: self.style.clone(),
            period: self.period.clone(),
            pages: self
                .pages
                .as_deref()
                .map(|s| range(s, "--pages"))
                .transpose()?,
            splits,
            min_size: self
                .min_size
                .as_deref()
                .map(|s| pair(s, 'x', "--min-size"))
                .transpose()?,
            max_size: self
                .max_size
                .as_deref()
                .map(|s| pair(s, 'x', "--max-size"))
                .transpose()?,
            ink: self.ink.as_deref().map(|s| range(s, "--ink")).transpose()?,
            drop_blank: self.drop_blank,
            drop_duplicates: self.drop_duplicates,
            matched_only: self.matched_only,
        })
    }
}

pub(crate) fn open_all(root: &RootArgs, facts: bool, json: bool) -> Result<Vec<Corpus>> {
    open_dirs(root, find_layouts(&root.root)?, facts, json)
}

pub(crate) fn open_dirs(
    root: &RootArgs,
    dirs: Vec<PathBuf>,
    facts: bool,
    json: bool,
) -> Result<Vec<Corpus>> {
    let fb = crate::feedback::Bars::shared(json);
    Ok(musicscore_gen::systems::open_layouts(
        dirs,
        on_error(&root.on_error)?,
        facts,
        &fb,
    )?)
}

pub(crate) fn open_one(root: &RootArgs, facts: bool, json: bool) -> Result<Corpus> {
    let layouts = find_layouts(&root.root)?;
    if layouts.len() > 1 {
        bail!(
            "{} holds {} layouts; pass one of them as --root: {}",
            root.root.display(),
            layouts.len(),
            layouts
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(open_dirs(root, layouts, facts, json)?.remove(0))
}

pub(crate) fn select(c: &Corpus, f: &FilterArgs) -> Result<Vec<usize>> {
    Ok(f.filter()?.apply(c)?)
}

/// An error when nothing is left to work on, blaming the right thing: no readable pages
/// in the layout, or filters that matched nothing.
pub(crate) fn ensure_pages(c: &Corpus, keep: &[usize]) -> Result<()> {
    if c.pages.is_empty() {
        bail!(
            "{}: no readable pages ({} skipped; `scorelab musicscore verify --root {}` lists why)",
            c.root.display(),
            c.report.skipped.len(),
            c.root.display()
        );
    }
    if keep.is_empty() {
        bail!(
            "{}: none of its {} pages is left after the filters",
            c.root.display(),
            c.pages.len()
        );
    }
    Ok(())
}

/// `A-B` with A ≤ B (a reversed range matched nothing, silently).
fn range<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    s: &str,
    flag: &str,
) -> Result<(T, T)> {
    let (a, b) = pair::<T>(s, '-', flag)?;
    if a > b {
        bail!("{flag}: '{s}' is reversed: A-B needs A ≤ B (did you mean {b}-{a}?)");
    }
    Ok((a, b))
}

pub(crate) fn pair<T: std::str::FromStr>(s: &str, sep: char, flag: &str) -> Result<(T, T)> {
    let (a, b) = s
        .split_once(sep)
        .with_context(|| format!("{flag}: '{s}' is not A{sep}B"))?;
    let p = |x: &str| x.trim().parse::<T>().ok();
    match (p(a), p(b)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => bail!("{flag}: '{s}' is not two numbers A{sep}B"),
    }
}
