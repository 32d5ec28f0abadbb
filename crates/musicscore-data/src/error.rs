//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading, selecting or exporting MusicScore data. Every
/// variant names the file (and where it helps, the entry or field) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum MusicScoreError {
    /// An I/O error on a file or folder.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A dataset root that holds none of the published layouts.
    #[error("{path}: {message}")]
    Layout {
        /// The folder.
        path: PathBuf,
        /// What was expected.
        message: String,
    },
    /// A metadata file that cannot be read as any of the known shapes.
    #[error("{path}: {message}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong, with the line/column or record where known.
        message: String,
    },
    /// A page file name that does not follow `IMSLP<id>_<page>.<ext>`.
    #[error("file name '{name}': {message}")]
    FileName {
        /// The name as found.
        name: String,
        /// Why it does not parse.
        message: String,
    },
    /// A broken tar.gz archive (truncated, bad checksum, bad tar header).
    #[error("{path}: {message}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong, with the byte offset or entry where known.
        message: String,
    },
    /// An image that cannot be decoded, or one larger than the configured limit.
    #[error("{source_name}: {message}")]
    Image {
        /// The file, or `archive:entry`.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A prompt template with a syntax error or an unknown placeholder.
    #[error("template '{template}': {message}")]
    Template {
        /// The template.
        template: String,
        /// What is wrong, with the byte position.
        message: String,
    },
    /// An invalid option (split fractions, sizes, filters).
    #[error("{0}")]
    Invalid(String),
    /// The consumer stopped (a dropped `BatchStream`); ends a walk early.
    #[error("cancelled by the consumer")]
    Cancelled,
    /// An error from the tensor library.
    #[error("{0}")]
    Core(#[from] score_core::ScoreError),
}

/// Shorthand for results in this crate.
pub type Result<T, E = MusicScoreError> = std::result::Result<T, E>;

/// Attach a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MusicScoreError {
    let path = path.into();
    move |source| MusicScoreError::Io { path, source }
}
