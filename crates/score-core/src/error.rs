//! The one error type of `score-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `score-core`: bad files, bad shapes, impossible
/// options and numerical failure during training. Every variant that concerns a file
/// names it, and every variant that concerns a value names the field.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content does not follow its format.
    #[error("{path}: malformed {format} file: {detail}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// The format that was expected (`IDX`, `NPY`, `safetensors`, ...).
        format: &'static str,
        /// What was wrong, naming the field.
        detail: String,
    },
    /// An option or argument outside its valid range.
    #[error("invalid {field}: {detail}")]
    InvalidArgument {
        /// The option or field.
        field: &'static str,
        /// What was expected.
        detail: String,
    },
    /// A tensor or array whose shape does not fit.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Which array.
        what: String,
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// Training produced a NaN or infinite loss.
    #[error(
        "non-finite loss {loss} at step {step}; the last good checkpoint is kept (lower the learning rate or enable gradient clipping)"
    )]
    NonFiniteLoss {
        /// The optimisation step at which it happened.
        step: usize,
        /// The loss value.
        loss: f64,
    },
    /// A checkpoint that does not fit the model it is loaded into.
    #[error("{path}: checkpoint does not fit: {detail}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What did not fit.
        detail: String,
    },
    /// Reading data back from a burn tensor failed.
    #[error("tensor data: {0}")]
    TensorData(String),
}

/// `Result` with [`ScoreError`].
pub type Result<T, E = ScoreError> = std::result::Result<T, E>;

impl ScoreError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error in `path`.
    pub fn format(
        path: impl Into<PathBuf>,
        format: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::Format {
            path: path.into(),
            format,
            detail: detail.into(),
        }
    }

    /// An invalid argument.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            detail: detail.into(),
        }
    }
}
