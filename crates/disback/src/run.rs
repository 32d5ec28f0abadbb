//! What a run shares between its stages: where it writes and how it reports (the
//! output folder, whether to show progress), and the batch shape of a generator step.

use std::path::PathBuf;

use crate::error::{DisbackError, Result};

/// Where a run writes and how it reports.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// The run folder: `generator.safetensors` (a one-step generator `scorelab sample`
    /// reads), `fake.safetensors`, `path.safetensors` and `recording.safetensors`
    /// (DisBack), `distill.jsonl`. None: nothing is written.
    pub dir: Option<PathBuf>,
    /// Progress bars on stderr.
    pub progress: bool,
    /// Stop after this many generator steps of this call (tests of interruption).
    pub stop_after: Option<usize>,
}

/// `[batch, sample_shape…]` as a rank-`D` shape.
pub(crate) fn batch_shape<const D: usize>(batch: usize, sample: &[usize]) -> Result<[usize; D]> {
    let v: Vec<usize> = std::iter::once(batch)
        .chain(sample.iter().copied())
        .collect();
    v.try_into().map_err(|v: Vec<usize>| {
        DisbackError::invalid(
            "sample_shape",
            format!("{} dimensions for a rank-{D} network", v.len() - 1),
        )
    })
}
