//! The crate's error type.

/// What can stop a run (each wrapped error is also the variant's `source`, so that a
/// caller can find, say, `ScoreError::Interrupted` in the chain):
/// a setting that cannot work (named by its `scorelab` flag), or an
/// error of the crate below that did the work (files, shapes, models).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting that cannot work, or that does not fit the checkpoint; the message
    /// names the flag (`--batch: …`).
    #[error("{0}")]
    Invalid(String),
    /// From score-core and the crates that share its error (files, shapes, checkpoints).
    #[error("{0}")]
    Core(#[from] score_core::ScoreError),
    /// From the Gaussian model of teleportation.
    #[error("{0}")]
    Gauss(#[from] gaussian_score::GaussError),
    /// From the augmentation objective.
    #[error("{0}")]
    Aug(#[from] scoreaug::AugError),
}

/// Shorthand for results in this crate.
pub type Result<T, E = RunError> = std::result::Result<T, E>;

/// An [`RunError::Invalid`] from a message.
pub(crate) fn invalid(message: impl Into<String>) -> RunError {
    RunError::Invalid(message.into())
}

/// Return an [`RunError::Invalid`] with a formatted message.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::error::RunError::Invalid(format!($($t)*)))
    };
}
pub(crate) use bail;
