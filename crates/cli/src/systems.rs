//! Staff-system images for the text-to-score commands: `--geometry` and the systems of
//! the selected pages of every layout under `--root`.

use anyhow::{Context, Result, bail};
use musicscore_data::prompt::Template;
use musicscore_gen::textscore::{Geometry, SystemItem, system_items};

use crate::common::bar_of;
use crate::corpus_args::{FilterArgs, RootArgs, select_pub};

pub(crate) fn parse_geometry(s: &str) -> Result<Geometry> {
    let (size, scale) = s.split_once('@').unwrap_or((s, "0.5"));
    let (w, h) = size
        .split_once('x')
        .with_context(|| format!("--geometry: '{s}' is not W×H@scale, e.g. 64x128@0.5"))?;
    let g = Geometry {
        width: w
            .trim()
            .parse()
            .with_context(|| format!("--geometry: width in '{s}'"))?,
        height: h
            .trim()
            .parse()
            .with_context(|| format!("--geometry: height in '{s}'"))?,
        scale: scale
            .trim()
            .parse()
            .with_context(|| format!("--geometry: scale in '{s}'"))?,
    };
    g.validate()?;
    Ok(g)
}

/// The system images of the selected pages of every layout under --root.
pub(crate) fn load_items(
    root: &RootArgs,
    filter: &FilterArgs,
    g: &Geometry,
    template: &Template,
    json: bool,
) -> Result<(Vec<SystemItem>, usize, String)> {
    let mut items = Vec::new();
    let mut tall = 0;
    let mut names = Vec::new();
    // Size, ink, blank and duplicate filters need each page's facts (issue 26: they
    // always failed with "open with facts").
    let facts = filter.filter()?.needs_facts();
    for corpus in crate::corpus_args::open_all(root, facts, json)? {
        let keep = select_pub(&corpus, filter)?;
        let pb = (!json).then(|| bar_of(keep.len() as u64, "systems", "pages"));
        let tick = || {
            if let Some(b) = &pb {
                b.inc(1);
            }
        };
        let (i, t) = system_items(&corpus, &keep, g, template, &tick)?;
        if let Some(b) = pb {
            b.finish_and_clear();
        }
        names.push(format!("{} ({} pages)", corpus.root.display(), keep.len()));
        items.extend(i);
        tall += t;
    }
    if items.is_empty() {
        bail!(
            "{}: no staff systems found in the selected pages",
            root.root.display()
        );
    }
    Ok((items, tall, names.join("; ")))
}
