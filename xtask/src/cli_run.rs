//! Running the `scorelab` CLI from xtask, and the study corpus it trains on.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

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

/// Run the `scorelab` CLI (built in the same profile as this xtask) with `args`.
pub(crate) fn scorelab(args: &[&std::ffi::OsStr]) -> Result<()> {
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["run", "-q", "-p", "scorelab", "--"])
            .args(args)
            .status()
            .context("running cargo run -p scorelab")?;
    if !status.success() {
        bail!("scorelab {:?} failed with {status}", args);
    }
    Ok(())
}
