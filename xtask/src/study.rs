//! The study corpus the text-to-score tasks train on, and how the library's pipelines
//! report to xtask's terminal.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use musicscore_gen::systems::Feedback;

/// The study corpus folder, or an error naming the command that renders it.
pub(crate) fn study_root(root: Option<PathBuf>) -> Result<PathBuf> {
    let root = root.unwrap_or_else(musicscore_data::study_corpus_dir);
    if !root.join("MusicScore-14K").join("metadata.json").exists() {
        bail!(
            "{}: no study corpus here; render it with `cargo xtask fixture musicscore --study` (music21 + verovio from PyPI, about 15 minutes)",
            root.display()
        );
    }
    Ok(root)
}

/// Notes and warnings on stderr and score-train's training bar; no other bars (the
/// tasks are long and run unattended).
struct Printed;

impl Feedback for Printed {
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }

    fn training_bar(&self) -> bool {
        true
    }
}

/// The feedback of xtask's text-to-score tasks.
pub(crate) fn printed() -> Arc<dyn Feedback> {
    Arc::new(Printed)
}
