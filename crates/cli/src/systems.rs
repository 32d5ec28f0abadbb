//! Staff-system images for the text-to-score commands: `--geometry` and the systems of
//! the selected pages of every layout under `--root` (`musicscore_gen::systems`).

use anyhow::Result;
use musicscore_data::prompt::Template;
use musicscore_gen::systems::{CorpusSpec, Systems, load_systems};
use musicscore_gen::textscore::Geometry;

use crate::corpus_args::{FilterArgs, RootArgs, on_error};

pub(crate) fn parse_geometry(s: &str) -> Result<Geometry> {
    Ok(s.parse()?)
}

/// The corpus `--root`, `--on-error` and the filter flags describe.
pub(crate) fn corpus_spec(root: &RootArgs, filter: &FilterArgs) -> Result<CorpusSpec> {
    Ok(CorpusSpec {
        root: root.root.clone(),
        on_error: on_error(&root.on_error)?,
        filter: filter.filter()?,
    })
}

/// The system images of the selected pages of every layout under --root.
pub(crate) fn load_items(
    root: &RootArgs,
    filter: &FilterArgs,
    g: &Geometry,
    template: &Template,
    json: bool,
) -> Result<Systems> {
    let spec = corpus_spec(root, filter)?;
    Ok(load_systems(
        &spec,
        g,
        template,
        &crate::feedback::Bars::shared(json),
    )?)
}
