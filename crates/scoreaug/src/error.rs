//! The one error type of `scoreaug`.

/// Everything that can go wrong in `scoreaug`.
#[derive(Debug, thiserror::Error)]
pub enum AugError {
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

impl AugError {
    /// An invalid argument.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            detail: detail.into(),
        }
    }
}

impl From<AugError> for score_core::ScoreError {
    fn from(e: AugError) -> Self {
        match e {
            AugError::Core(c) => c,
            AugError::InvalidArgument { field, detail } => {
                score_core::ScoreError::InvalidArgument { field, detail }
            }
        }
    }
}

/// `Result` with [`AugError`].
pub type Result<T, E = AugError> = std::result::Result<T, E>;
