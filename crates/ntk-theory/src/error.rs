//! The one error type of `ntk-theory`.

/// Errors of the kernel computations.
#[derive(Debug, thiserror::Error)]
pub enum NtkError {
    /// An argument with the wrong shape or value.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// What was expected.
        detail: String,
    },
    /// A factorisation failed (a Gram matrix that is not positive definite, say).
    #[error("{what} failed: {detail}")]
    LinAlg {
        /// Which factorisation.
        what: &'static str,
        /// The solver's message.
        detail: String,
    },
}

/// `Result` with [`NtkError`].
pub type Result<T, E = NtkError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> NtkError {
    NtkError::Invalid {
        field,
        detail: detail.into(),
    }
}
