//! The one error type of `disback`.

/// Everything that can go wrong in `disback`.
#[derive(Debug, thiserror::Error)]
pub enum DisbackError {
    /// An option or argument outside its valid range.
    #[error("invalid {field}: {detail}")]
    InvalidArgument {
        /// The option or field.
        field: &'static str,
        /// What was expected.
        detail: String,
    },
    /// An error from score-core (files, tensors, training).
    #[error(transparent)]
    Core(#[from] score_core::ScoreError),
}

impl DisbackError {
    /// An invalid argument.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            detail: detail.into(),
        }
    }
}

impl From<DisbackError> for score_core::ScoreError {
    fn from(e: DisbackError) -> Self {
        match e {
            DisbackError::Core(c) => c,
            DisbackError::InvalidArgument { field, detail } => {
                score_core::ScoreError::InvalidArgument { field, detail }
            }
        }
    }
}

/// `Result` with [`DisbackError`].
pub type Result<T, E = DisbackError> = std::result::Result<T, E>;
