//! The run folder every training command writes into: created and locked against a
//! second process, guarded against replacing another run, its checkpoint read back on
//! resume, and the rule that resuming cannot change a run's settings.

use std::path::{Path, PathBuf};

use score_core::error::{Result, ScoreError};
use score_core::fs::RunLock;

use crate::checkpoint::CheckpointFile;

/// The file name of a run's checkpoint inside its folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The file name of a run's log inside its folder.
pub const LOG_FILE: &str = "train.jsonl";

/// What to do with a run already in the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// Start a run; refuse a folder that holds one.
    #[default]
    New,
    /// Continue the run in the folder (or start one where there is none).
    Resume,
    /// Replace the run in the folder.
    Overwrite,
}

impl RunMode {
    /// The mode the `--resume` / `--overwrite` flags ask for (`--resume` wins).
    pub fn from_flags(resume: bool, overwrite: bool) -> Self {
        match (resume, overwrite) {
            (true, _) => Self::Resume,
            (false, true) => Self::Overwrite,
            (false, false) => Self::New,
        }
    }
}

/// An open run folder, locked for as long as it lives.
pub struct RunDir {
    /// The folder.
    pub out: PathBuf,
    /// Its checkpoint file (which may not exist yet).
    pub checkpoint: PathBuf,
    /// The checkpoint read back when resuming a run that has one.
    pub resume: Option<CheckpointFile>,
    _lock: RunLock,
}

impl std::fmt::Debug for RunDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunDir")
            .field("out", &self.out)
            .field("resumed_step", &self.resume.as_ref().map(|c| c.meta.step))
            .finish()
    }
}

impl RunDir {
    /// Create and lock `out`, apply `mode` to a run already there (refuse it, read it
    /// back, or remove its checkpoint and log), after finishing or removing what a killed
    /// write left (safe under the lock: no other process writes here).
    pub fn open(out: &Path, mode: RunMode) -> Result<Self> {
        let lock = RunLock::acquire(out)?;
        score_core::fs::clean_stale_temporaries(out)?;
        let checkpoint = out.join(CHECKPOINT_FILE);
        guard_existing_run(mode, out, &checkpoint)?;
        let resume = if mode == RunMode::Resume && checkpoint.exists() {
            Some(CheckpointFile::read(&checkpoint)?)
        } else {
            None
        };
        Ok(Self {
            out: out.to_path_buf(),
            checkpoint,
            resume,
            _lock: lock,
        })
    }

    /// The run's log file.
    pub fn log(&self) -> PathBuf {
        self.out.join(LOG_FILE)
    }
}

/// Refuse to train over an existing run unless the mode says what to do; with
/// [`RunMode::Overwrite`], remove the old checkpoint and log first.
fn guard_existing_run(mode: RunMode, out: &Path, ck_path: &Path) -> Result<()> {
    if mode == RunMode::Resume || !ck_path.exists() {
        return Ok(());
    }
    if mode == RunMode::New {
        let step = CheckpointFile::read(ck_path)
            .map(|ck| format!("a checkpoint of step {}", ck.meta.step))
            .unwrap_or_else(|_| "a checkpoint".into());
        return Err(ScoreError::invalid(
            "run folder",
            format!(
                "{}: {step} is already there: pass --resume to continue that run or --overwrite to replace it",
                ck_path.display()
            ),
        ));
    }
    for p in [ck_path.to_path_buf(), out.join(LOG_FILE)] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ScoreError::io(p, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A setting that resuming cannot change: the run's value, or an error when `given`
/// holds another one. `setting` names it as its flag; `ck` is the run's checkpoint.
pub fn fixed_on_resume<T: PartialEq + std::fmt::Display>(
    setting: &str,
    given: Option<T>,
    stored: T,
    ck: &Path,
) -> Result<T> {
    match given {
        Some(g) if g != stored => Err(ScoreError::FixedOnResume {
            setting: setting.into(),
            given: g.to_string(),
            stored: stored.to_string(),
            path: ck.to_path_buf(),
        }),
        _ => Ok(stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restated_setting_must_agree_with_the_run() {
        let ck = Path::new("run/checkpoint.safetensors");
        assert_eq!(fixed_on_resume("--batch", None, 16, ck).unwrap(), 16);
        assert_eq!(fixed_on_resume("--batch", Some(16), 16, ck).unwrap(), 16);
        let e = fixed_on_resume("--batch", Some(8), 16, ck)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--batch 8: run/checkpoint.safetensors was trained with 16"),
            "{e}"
        );
    }

    #[test]
    fn a_new_run_refuses_a_folder_with_a_run_and_overwrite_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join(CHECKPOINT_FILE);
        std::fs::write(&ck, b"x").unwrap();
        std::fs::write(dir.path().join(LOG_FILE), b"{}").unwrap();
        let e = RunDir::open(dir.path(), RunMode::New)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is already there"), "{e}");
        let run = RunDir::open(dir.path(), RunMode::Overwrite).unwrap();
        assert!(run.resume.is_none() && !ck.exists() && !run.log().exists());
    }
}
