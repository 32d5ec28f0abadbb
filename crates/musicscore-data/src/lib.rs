//! # musicscore-data (planned: issue 5 — not implemented yet)
//!
//! Dai et al., *MusicScore: A Dataset for Music Score Modeling and Generation* (arXiv
//! 2406.11462); specification in `shared/papers/musicscore.md`.
//!
//! This crate will hold readers for the published layouts (JPEG folders with
//! `metadata.json`, streamed `{train,val,test}.tar.gz`), the IMSLP file-name parser,
//! metadata normalisation and joins, prompt templates, filters, splits, statistics,
//! `imagefolder` export, and a burn `Dataset` of page images and prompts.

pub use score_core::burn;
