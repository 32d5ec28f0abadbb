//! What a run shares between its stages: where it writes and how it reports (the
//! output folder, progress bars), and the batch shape of a generator step.

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

/// A progress bar that may be off.
pub(crate) struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub(crate) fn new(on: bool, len: usize, pos: usize, what: &str) -> Self {
        Self(on.then(|| {
            let b = indicatif::ProgressBar::new(len as u64).with_position(pos as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} steps  {{msg}}  ETA {{eta}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        }))
    }
    pub(crate) fn tick(&self, pos: usize, msg: String) {
        if let Some(b) = &self.0 {
            b.set_position(pos as u64);
            b.set_message(msg);
        }
    }
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish();
        }
    }
}
