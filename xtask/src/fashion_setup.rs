//! `cargo xtask fashion-mnist-setup`: the Fashion-MNIST training split (60 000 images,
//! MIT licence) from Debian's `dataset-fashion-mnist` package, unpacked into the cache
//! without installing it (no root needed). `apt-get download` fetches the pinned
//! version, its sha256 is checked, `dpkg -x` unpacks it, and the four IDX files are
//! checked and written atomically to `score_io::images::cached_fashion_dir()`, where
//! `--data fashion-mnist` finds them. A second call with the files intact does nothing.

use crate::pypi::sha256;
use anyhow::{Context, Result, bail};
use std::process::Command;

const PACKAGE: &str = "dataset-fashion-mnist=0.0~git20200523.55506a9-1";
const DEB: &str = "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb";
const DEB_SHA256: &str = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0";
const INNER: &str = "usr/share/datasets/fashion-mnist";
/// The files kept and their sha256.
const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
];

fn intact(dir: &std::path::Path) -> bool {
    FILES
        .iter()
        .all(|(f, sum)| std::fs::read(dir.join(f)).is_ok_and(|b| sha256(&b) == *sum))
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {what}"))?;
    if !st.success() {
        bail!("{what} failed with {st}");
    }
    Ok(())
}

/// Fetch and unpack the split unless it is already in place and intact.
pub fn run() -> Result<()> {
    let dir = score_io::images::cached_fashion_dir();
    if intact(&dir) {
        println!("Fashion-MNIST up to date: {}", dir.display());
        return Ok(());
    }
    let work = score_core::fs::cache_dir().join("fashion-mnist-deb");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let deb = work.join(DEB);
    if !std::fs::read(&deb).is_ok_and(|b| sha256(&b) == DEB_SHA256) {
        let mut get = Command::new("apt-get");
        get.current_dir(&work).args(["download", PACKAGE]);
        run_tool(&mut get, "apt-get download dataset-fashion-mnist (31 MB)")?;
    }
    let bytes = std::fs::read(&deb).with_context(|| format!("reading {}", deb.display()))?;
    if sha256(&bytes) != DEB_SHA256 {
        bail!(
            "{}: sha256 {} is not the pinned {DEB_SHA256}",
            deb.display(),
            sha256(&bytes)
        );
    }
    let root = work.join("root");
    run_tool(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x",
    )?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (f, sum) in FILES {
        let src = root.join(INNER).join(f);
        let b = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
        if sha256(&b) != sum {
            bail!(
                "{}: sha256 {} is not the pinned {sum}",
                src.display(),
                sha256(&b)
            );
        }
        score_core::fs::write_atomic(&dir.join(f), &b)?;
    }
    std::fs::remove_dir_all(&root).ok();
    println!(
        "Fashion-MNIST (60 000 + 10 000 images) in {}",
        dir.display()
    );
    Ok(())
}
