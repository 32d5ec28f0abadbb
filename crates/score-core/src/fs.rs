//! Files: atomic writes (a temporary in the same folder, synced, then renamed; several
//! files as one unit), the clean-up of temporaries a killed process left, and the cache
//! folder. This is the only file code in `score-core`; every crate writes through it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, ScoreError};

/// scorelab's cache directory: `$SCORELAB_CACHE`, else `$HOME/.cache/scorelab`. An empty
/// `SCORELAB_CACHE` counts as unset (it used to mean the current folder).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SCORELAB_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache").join("scorelab")
}

/// The metadata of `path` if it is a regular file: a FIFO or a device (`/dev/zero`)
/// would block or never end when read, a folder fails late.
fn regular_file(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| ScoreError::io(path, e))?;
    if meta.is_file() {
        return Ok(meta);
    }
    let kind = match meta.is_dir() {
        true => "a folder",
        false => "a FIFO, socket or device",
    };
    Err(ScoreError::invalid(
        "input file",
        format!("{}: {kind}, not a regular file", path.display()),
    ))
}

/// Read a whole input file: a regular file whose size fits in memory. The one way
/// library code reads inputs, so that no input hangs or exhausts memory by its kind or
/// size.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = regular_file(path)?;
    crate::limits::ensure_fits(
        &format!("{} (its size)", path.display()),
        meta.len() as u128,
        "",
    )?;
    std::fs::read(path).map_err(|e| ScoreError::io(path, e))
}

/// The sha256 of `bytes`, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Check the bytes read from `path` against the sha256 `want` that its set-up
/// `command` recorded: a changed file (damaged or tampered with) is an error naming it,
/// not a network that silently computes something else.
pub fn check_sha256(path: &Path, bytes: &[u8], want: &str, command: &str) -> Result<()> {
    let got = sha256_hex(bytes);
    if got == want.trim() {
        return Ok(());
    }
    Err(ScoreError::invalid(
        "weights",
        format!(
            "{}: sha256 {got}, not the {} that `{command}` wrote: the file changed since; delete it and run `{command}` again",
            path.display(),
            want.trim()
        ),
    ))
}

/// A digest identifying a file's content: `sha256:<hex>` of its bytes.
pub fn file_digest(path: &Path) -> Result<String> {
    Ok(format!("sha256:{}", sha256_hex(&read_file(path)?)))
}

/// Open an input file for reading in pieces: a regular file (any size).
pub fn open_file(path: &Path) -> Result<std::fs::File> {
    regular_file(path)?;
    std::fs::File::open(path).map_err(|e| ScoreError::io(path, e))
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
///
/// A kill between two renames would leave some targets new and some old. So before the
/// first rename of a group, a journal naming every (temporary, target) pair is written
/// (atomically) to the first file's folder, and removed after the last rename; the next
/// process that opens the folder ([`recover_commits`], which
/// [`clean_stale_temporaries`] runs first) completes the renames of a journal left by a
/// dead process. Every temporary is complete and synced before the journal exists, so
/// the group always ends all new or (without a journal) all old.
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let cleanup = |pairs: &[(PathBuf, PathBuf)]| {
        for (t, _) in pairs {
            let _ = std::fs::remove_file(t);
        }
    };
    for (path, bytes) in files {
        let (dir, tmp) = temp_path(path);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            cleanup(&pairs);
            return Err(ScoreError::io(dir, e));
        }
        pairs.push((tmp.clone(), path.to_path_buf()));
        if let Err(e) = write_synced(&tmp, bytes) {
            cleanup(&pairs);
            return Err(ScoreError::io(*path, e));
        }
    }
    let journal = match pairs.len() {
        0 | 1 => None,
        _ => Some(write_journal(&pairs).inspect_err(|_| cleanup(&pairs))?),
    };
    for (tmp, path) in &pairs {
        // After a failed rename the journal stays: the next run completes the group.
        std::fs::rename(tmp, path).map_err(|e| ScoreError::io(path, e))?;
        fault_point();
    }
    if let Some(j) = journal {
        std::fs::remove_file(&j).map_err(|e| ScoreError::io(&j, e))?;
    }
    Ok(())
}

/// The journal of this process's grouped commit in `dir`.
fn journal_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{JOURNAL_PREFIX}{pid}.json"))
}

const JOURNAL_PREFIX: &str = ".scorelab-commit-";

/// Write the journal of `pairs` (absolute paths) next to the first target, atomically.
fn write_journal(pairs: &[(PathBuf, PathBuf)]) -> Result<PathBuf> {
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| ScoreError::io(p, e));
    let entries = pairs
        .iter()
        .map(|(t, p)| Ok((abs(t)?, abs(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let (dir, _) = temp_path(&entries[0].1);
    let journal = journal_path(&dir, std::process::id());
    let json = serde_json::to_vec(&entries)
        .map_err(|e| ScoreError::invalid("commit journal", e.to_string()))?;
    let (_, tmp) = temp_path(&journal);
    write_synced(&tmp, &json).map_err(|e| ScoreError::io(&journal, e))?;
    std::fs::rename(&tmp, &journal).map_err(|e| ScoreError::io(&journal, e))?;
    Ok(journal)
}

/// Fault injection for the tests of grouped commits: with
/// `SCORELAB_FAULT_ABORT_AFTER_RENAMES=K` in the environment, the process aborts right
/// after the K-th rename of an atomic write, as a kill at that moment would.
fn fault_point() {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LIMIT: OnceLock<Option<usize>> = OnceLock::new();
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var("SCORELAB_FAULT_ABORT_AFTER_RENAMES")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(k) = *limit
        && DONE.fetch_add(1, Ordering::SeqCst) + 1 == k
    {
        std::process::abort();
    }
}

/// Complete the grouped commits that a dead process left half done in `dir`: every
/// rename its journal names whose temporary is still there, then the journal goes.
/// Returns the targets completed. Journals of live processes are left alone.
pub fn recover_commits(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for (journal, pid) in entries_with(dir, |name| {
        name.strip_prefix(JOURNAL_PREFIX)?
            .strip_suffix(".json")?
            .parse()
            .ok()
    })? {
        if is_alive(pid) {
            continue;
        }
        let bytes = read_file(&journal)?;
        let pairs: Vec<(PathBuf, PathBuf)> =
            serde_json::from_slice(&bytes).map_err(|e| ScoreError::Format {
                path: journal.clone(),
                format: "commit journal",
                detail: e.to_string(),
            })?;
        for (tmp, path) in pairs {
            if tmp.exists() {
                std::fs::rename(&tmp, &path).map_err(|e| ScoreError::io(&path, e))?;
                done.push(path);
            }
        }
        std::fs::remove_file(&journal).map_err(|e| ScoreError::io(&journal, e))?;
    }
    Ok(done)
}

/// Whether process `pid` runs (this one always does). Without `/proc`, only this one.
fn is_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// The entries of `dir` whose name `pick` maps to a pid, with it. A missing folder has
/// none.
fn entries_with(dir: &Path, pick: impl Fn(&str) -> Option<u32>) -> Result<Vec<(PathBuf, u32)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ScoreError::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ScoreError::io(dir, e))?;
        if let Some(pid) = pick(&entry.file_name().to_string_lossy()) {
            found.push((entry.path(), pid));
        }
    }
    found.sort();
    Ok(found)
}

/// Remove the temporaries that [`write_atomic`] left in `dir` when a process was killed
/// mid-write (`.<name>.tmp-<pid>` of a process that no longer runs), after completing
/// the grouped commits such a process left half done ([`recover_commits`]). Returns the
/// paths removed. Where `/proc` does not exist, every temporary of another process
/// counts as stale.
pub fn clean_stale_temporaries(dir: &Path) -> Result<Vec<PathBuf>> {
    recover_commits(dir)?;
    let mut removed = Vec::new();
    for (p, pid) in entries_with(dir, |name| {
        name.strip_prefix('.')?.rsplit_once(".tmp-")?.1.parse().ok()
    })? {
        if !is_alive(pid) {
            std::fs::remove_file(&p).map_err(|e| ScoreError::io(&p, e))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

/// `path` made absolute with symbolic links resolved as far as it exists (an output
/// that does not exist yet keeps its missing tail as written).
fn resolved(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| ScoreError::io(path, e))?;
    let mut tail = Vec::new();
    let mut head = abs.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(head) {
            return Ok(tail.iter().rev().fold(real, |p, c| p.join(c)));
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                head = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// Refuse an output that is an input, holds it, or lies inside it: writing (or
/// replacing) the output would then overwrite or delete the input, or add files to it.
/// `out_flag` and `in_flag` name the two in the error.
pub fn ensure_apart(out: &Path, out_flag: &'static str, input: &Path, in_flag: &str) -> Result<()> {
    let (o, i) = (resolved(out)?, resolved(input)?);
    let relation = if o == i {
        "is"
    } else if i.starts_with(&o) {
        "holds"
    } else if o.starts_with(&i) {
        "lies inside"
    } else {
        return Ok(());
    };
    Err(ScoreError::invalid(
        out_flag,
        format!(
            "{} {relation} {in_flag} {}: writing it would replace, delete or add to the input; choose an --out outside it",
            out.display(),
            input.display()
        ),
    ))
}

/// Refuse an output file that is one of the inputs (the same file, by any path or link):
/// writing it would replace the input. Each input is `(path, flag)`; the error names the
/// output's flag and the input's. An output inside an input folder is allowed (a
/// statistics file beside the images it summarises); `ensure_apart` is the check for
/// output folders.
pub fn ensure_not_input(
    out: &Path,
    out_flag: &'static str,
    inputs: &[(&Path, &str)],
) -> Result<()> {
    let o = resolved(out)?;
    for (input, in_flag) in inputs {
        if resolved(input)? == o {
            return Err(ScoreError::invalid(
                out_flag,
                format!(
                    "{} is {in_flag} {}: writing it would replace the input; choose another {out_flag}",
                    out.display(),
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

/// An advisory lock on a run folder (`.scorelab.lock` in it), held until dropped: a
/// second process that tries to write the same run is refused instead of interleaving
/// its checkpoints and log with the first one's. The operating system releases the lock
/// when the process ends, however it ends.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Create `dir` if needed and take its lock, or fail naming the folder when another
    /// process holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| ScoreError::io(dir, e))?;
        let path = dir.join(".scorelab.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ScoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ScoreError::invalid(
                "run folder",
                format!(
                    "{} is in use by another scorelab process (it holds {}); wait for it to finish or use another --out",
                    dir.display(),
                    path.display()
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(ScoreError::io(path, e)),
        }
    }
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

    #[test]
    fn a_group_a_dead_process_left_half_renamed_is_completed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
        // What a kill after the first of two renames leaves: a new, b old, b's
        // temporary and the journal of a process that no longer runs (pid 0).
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        let tb = dir.path().join(".b.bin.tmp-0");
        std::fs::write(&tb, b"new").unwrap();
        let ta = dir.path().join(".a.bin.tmp-0");
        let journal = journal_path(dir.path(), 0);
        std::fs::write(
            &journal,
            serde_json::to_vec(&[(&ta, &a), (&tb, &b)]).unwrap(),
        )
        .unwrap();
        // Without the journal the clean-up would delete b's only new copy.
        assert!(clean_stale_temporaries(dir.path()).unwrap().is_empty());
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
        assert!(!journal.exists() && !tb.exists());
        // A group written in full leaves no journal behind.
        write_atomic_all(&[(&a, b"x"), (&b, b"y")]).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn a_run_folder_is_locked_until_its_lock_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run).unwrap();
        let err = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(
            err.contains("in use by another") && err.contains("run"),
            "{err}"
        );
        drop(first);
        RunLock::acquire(&run).unwrap();
    }

    #[test]
    fn an_output_file_that_is_an_input_by_any_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.npy");
        std::fs::write(&data, b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&data, dir.path().join("link.npy")).unwrap();
        let refused = |out: &Path| {
            ensure_not_input(
                out,
                "--out",
                &[(Path::new("/nonexistent/m"), "--model"), (&data, "--data")],
            )
            .map_err(|e| e.to_string())
        };
        let err = refused(&data).unwrap_err();
        assert!(err.contains("--out") && err.contains("is --data"), "{err}");
        assert!(refused(&dir.path().join("link.npy")).is_err());
        assert!(refused(&dir.path().join("sub/../data.npy")).is_err());
        // Beside the input, or a new file, is fine.
        assert!(refused(&dir.path().join("stats.npz")).is_ok());
    }

    #[test]
    fn an_output_that_is_holds_or_lies_inside_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        std::fs::create_dir_all(root.join("pages")).unwrap();
        let refused = |out: &Path| ensure_apart(out, "--out", &root, "--root").is_err();
        assert!(refused(&root));
        assert!(refused(dir.path()));
        assert!(refused(&root.join("pages/../new/sheet.png")));
        assert!(refused(&dir.path().join("corpus/.")));
        assert!(!refused(&dir.path().join("corpus-export")));
        assert!(!refused(&dir.path().join("elsewhere/out")));
    }
}
