//! Files: atomic writes (a temporary in the same folder, synced, then renamed; several
//! files as one unit), the clean-up of temporaries a killed process left, and the cache
//! folder. This is the only file code in `score-core`; every crate writes through it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, ScoreError};

/// scorelab's cache directory: `$SCORELAB_CACHE`, else `$HOME/.cache/scorelab`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SCORELAB_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache").join("scorelab")
}

fn temp_path(path: &Path) -> (PathBuf, PathBuf) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    (dir, tmp)
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, flushed and
/// synced, then renamed over the target. A crash leaves either the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_all(&[(path, bytes)])
}

/// Write several files as one unit: every temporary is written and synced first, and
/// only when all succeeded are they renamed over their targets. A failure (a full disk,
/// a bad folder) leaves every old file as it was and no new one beside them.
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut written: Vec<PathBuf> = Vec::new();
    let cleanup = |written: &[PathBuf]| {
        for t in written {
            let _ = std::fs::remove_file(t);
        }
    };
    for (path, bytes) in files {
        let (dir, tmp) = temp_path(path);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            cleanup(&written);
            return Err(ScoreError::io(dir, e));
        }
        written.push(tmp.clone());
        if let Err(e) = write_synced(&tmp, bytes) {
            cleanup(&written);
            return Err(ScoreError::io(*path, e));
        }
    }
    for ((path, _), tmp) in files.iter().zip(&written) {
        std::fs::rename(tmp, path).map_err(|e| {
            cleanup(&written);
            ScoreError::io(*path, e)
        })?;
    }
    Ok(())
}

/// Remove the temporaries that [`write_atomic`] left in `dir` when a process was killed
/// mid-write (`.<name>.tmp-<pid>` of a process that no longer runs). Returns the paths
/// removed. Where `/proc` does not exist, every temporary of another process counts as
/// stale.
pub fn clean_stale_temporaries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(ScoreError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ScoreError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| ScoreError::io(&p, e))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_atomic_writes_leave_old_files_on_failure_and_stale_temps_go() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let b = dir.path().join("sub-is-a-file/b.bin");
        std::fs::write(&a, b"old").unwrap();
        std::fs::write(dir.path().join("sub-is-a-file"), b"x").unwrap();
        assert!(write_atomic_all(&[(&a, b"new"), (&b, b"new")]).is_err());
        assert_eq!(std::fs::read(&a).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "a temporary was left behind");
        // A temporary of a process that no longer exists (pid 0 is never a user
        // process on Linux; /proc/0 does not exist) is removed, ours is kept.
        let stale = dir.path().join(".c.bin.tmp-0");
        let ours = dir
            .path()
            .join(format!(".d.bin.tmp-{}", std::process::id()));
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(&ours, b"x").unwrap();
        assert_eq!(
            clean_stale_temporaries(dir.path()).unwrap(),
            vec![stale.clone()]
        );
        assert!(!stale.exists() && ours.exists());
    }
}
