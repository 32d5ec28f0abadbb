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
        "non-finite loss {loss} at step {step}; {} (the data were checked for NaN/inf when read: lower the learning rate or enable gradient clipping)",
        kept_checkpoint(*checkpoint_step)
    )]
    NonFiniteLoss {
        /// The optimisation step at which it happened.
        step: usize,
        /// The loss value.
        loss: f64,
        /// The step of the last checkpoint on disk, if one was written.
        checkpoint_step: Option<usize>,
    },
    /// Training diverged: the loss stayed far above its best level (see
    /// `score_train::train::DivergenceGuard`).
    #[error(
        "training diverged at step {step}: the loss stayed above {factor}x its best running median ({reference:.4e}) for {patience} steps (last {loss:.4e}); {} (lower the learning rate or enable gradient clipping)",
        kept_checkpoint(*checkpoint_step)
    )]
    Diverged {
        /// The step at which the guard stopped the run.
        step: usize,
        /// The last loss.
        loss: f64,
        /// The best running median.
        reference: f64,
        /// The factor of the rule.
        factor: f64,
        /// The number of consecutive steps of the rule.
        patience: usize,
        /// The step of the last checkpoint on disk, if one was written.
        checkpoint_step: Option<usize>,
    },
    /// A request that would need more memory than the machine has, or more elements
    /// than it can address.
    #[error("{what}: too large: {detail}")]
    TooLarge {
        /// The option or array.
        what: String,
        /// The estimate and what to do.
        detail: String,
    },
    /// A run setting given again on resume with a value other than the run's: resuming
    /// cannot change it.
    #[error(
        "{setting} {given}: {} was trained with {stored}, and --resume cannot change it (start a new run in another --out, or --overwrite)",
        path.display()
    )]
    FixedOnResume {
        /// The setting, as its flag (`--batch`).
        setting: String,
        /// The value given.
        given: String,
        /// The run's value.
        stored: String,
        /// The run's checkpoint.
        path: PathBuf,
    },
    /// A checkpoint that does not fit the model it is loaded into.
    #[error("{path}: checkpoint does not fit: {detail}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What did not fit.
        detail: String,
    },
    /// A downloaded artefact (network weights, reference statistics) that is not on this
    /// machine yet; the message names the set-up command that creates it.
    #[error("{what} not found at {path}: run `{command}` once to create it")]
    MissingArtifact {
        /// What is missing.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The command that creates it.
        command: &'static str,
    },
    /// Training stopped on request (Ctrl-C) after saving.
    #[error(
        "interrupted after step {step}; {}: run the same command again (train and musicscore train: with --resume) to continue",
        kept_checkpoint(*checkpoint_step)
    )]
    Interrupted {
        /// The last step done.
        step: usize,
        /// The step of the last checkpoint on disk, if one was written.
        checkpoint_step: Option<usize>,
    },
    /// A computation (a sampler's output, a metric) that produced NaN or infinite
    /// values, named with what to change.
    #[error("{what}: {count} of {total} values are NaN or infinite; {hint}")]
    NonFiniteResult {
        /// What produced them (`sampler heun`, `FID`, ...).
        what: String,
        /// How many values are not finite.
        count: usize,
        /// How many values there are.
        total: usize,
        /// The likely cause and what to change.
        hint: String,
    },
    /// Reading data back from a burn tensor failed.
    #[error("tensor data: {0}")]
    TensorData(String),
}

fn kept_checkpoint(step: Option<usize>) -> String {
    match step {
        Some(s) => format!("the checkpoint of step {s} is kept"),
        None => "no checkpoint had been written yet".into(),
    }
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

    /// A loss failure ([`ScoreError::NonFiniteLoss`], [`ScoreError::Diverged`]) naming
    /// `saved` as the last checkpoint on disk; any other error unchanged. The training
    /// loop knows what it saved, the step that failed does not.
    pub fn with_checkpoint(self, saved: Option<usize>) -> Self {
        match self {
            Self::NonFiniteLoss { step, loss, .. } => Self::NonFiniteLoss {
                step,
                loss,
                checkpoint_step: saved,
            },
            Self::Diverged {
                step,
                loss,
                reference,
                factor,
                patience,
                ..
            } => Self::Diverged {
                step,
                loss,
                reference,
                factor,
                patience,
                checkpoint_step: saved,
            },
            other => other,
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
