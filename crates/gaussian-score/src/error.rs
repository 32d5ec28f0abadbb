//! The one error type of `gaussian-score`.

use std::path::PathBuf;

/// Errors of the Gaussian score models.
#[derive(Debug, thiserror::Error)]
pub enum GaussError {
    /// An error from score-core (files, shapes, samplers).
    #[error(transparent)]
    Core(#[from] score_core::ScoreError),
    /// A data array that cannot be fitted.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The offending field or argument.
        field: &'static str,
        /// What was expected.
        detail: String,
    },
    /// The eigensolver failed.
    #[error("eigendecomposition of the {what} failed: {detail}")]
    Eigen {
        /// Which matrix.
        what: &'static str,
        /// The solver's message.
        detail: String,
    },
    /// A saved model that cannot be read.
    #[error("{path}: {detail}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What was wrong, naming the field.
        detail: String,
    },
}

/// `Result` with [`GaussError`].
pub type Result<T, E = GaussError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> GaussError {
    GaussError::Invalid {
        field,
        detail: detail.into(),
    }
}
