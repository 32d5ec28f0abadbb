//! # musicscore-data
//!
//! Readers, captions, selection and a burn `Dataset` for MusicScore (Z. Dai et al.,
//! *MusicScore: A Dataset for Music Score Modeling and Generation*, arXiv 2406.11462,
//! 2024): pages of IMSLP scores paired with the IMSLP "General Information" metadata of
//! their work, for text-to-score diffusion. Specification: `shared/papers/musicscore.md`;
//! guide with measured numbers: `docs/musicscore-data.md`.
//!
//! | module | what |
//! |---|---|
//! | [`corpus`] | open a layout (loose JPEG folders or streamed `{train,val,test}.tar.gz`), join pages to records, report what failed |
//! | [`name`] | the `IMSLP<file id>_<page>.jpg` parser |
//! | [`metadata`] | `metadata.json` in any of its shapes, IMSLP labels, tidy fields |
//! | [`archive`], [`gz`] | streamed tar.gz reading, one-pass index with inflater checkpoints for random access |
//! | [`prompt`] | the paper's prompt template, user templates, caption dropout |
//! | [`select`] | filters, group-aware seeded splits, statistics |
//! | [`notation`] | key signatures read off system images, the signature a key name implies |
//! | [`image`] | JPEG/PNG decoding with size limits, fit-and-pad, centre crop, staff-system tiles, page facts (ink, hashes) |
//! | [`dataset`] | the burn `Dataset` of image tensors and prompts, parallel batches, a prefetching stream |
//! | [`export`] | Hugging Face `imagefolder` export, contact sheets |
//!
//! Text-to-score generation on this data (the model, its training and sampling) is the
//! `musicscore-gen` crate.
//!
//! ```no_run
//! use std::sync::Arc;
//! use musicscore_data::corpus::{Corpus, OpenOptions};
//! use musicscore_data::dataset::{ItemOptions, ScoreDataset};
//! use musicscore_data::image::{DecodeOptions, Resize};
//! use musicscore_data::prompt::{Captioner, Template};
//! use musicscore_data::select::Filter;
//!
//! # fn main() -> musicscore_data::Result<()> {
//! let corpus = Arc::new(Corpus::open("MisicScore-400".as_ref(), &OpenOptions::default())?);
//! let violin = Filter { instrument: Some("violin".into()), ..Default::default() }.apply(&corpus)?;
//! let opts = ItemOptions {
//!     decode: DecodeOptions::default(),
//!     resize: Resize::FitPad { width: 512, height: 512 },
//!     captioner: Captioner { template: Template::default(), dropout: 0.1, seed: 0 },
//! };
//! let ds = ScoreDataset::new(corpus.clone(), &violin, opts)?;
//! let (images, prompts) = ds.batch(&[0, 1], &Default::default())?;
//! # let _ = (images, prompts);
//! # Ok(()) }
//! ```
//!
//! Bad input never panics: every reader returns an error naming the file (and entry or
//! field), or, with [`corpus::OnError::Skip`], leaves the item out and lists it in
//! [`corpus::Report`].

pub mod archive;
pub mod corpus;
pub mod dataset;
pub mod error;
pub mod export;
pub mod gz;
pub mod image;
pub mod metadata;
pub mod name;
pub mod notation;
pub mod prompt;
pub mod select;

pub use error::{MusicScoreError, Result};
pub use score_core::burn;

/// Where `cargo xtask fixture musicscore --study` writes the study corpus:
/// `$SCORELAB_CACHE/musicscore-study`, else `~/.cache/scorelab/musicscore-study`.
pub fn study_corpus_dir() -> std::path::PathBuf {
    score_core::fs::cache_dir().join("musicscore-study")
}
