//! scorelab under hostile but fair input: every case exits with a one-line error that
//! names the file or flag, never a panic (exit 101) or an abort (134), and never loses
//! or silently corrupts a run. Each case is one of the review's findings (issue 10).

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn scorelab_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scorelab"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs");
    Run {
        // A signal (abort) has no code: report it as 128 + signal, as a shell does.
        code: out.status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + out.status.signal().unwrap_or(0)
        }),
        out: String::from_utf8_lossy(&out.stdout).into(),
        err: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn scorelab(args: &[&str]) -> Run {
    scorelab_env(args, &[])
}

/// The command fails with exit 1 and one error line containing every needle.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let r = scorelab(args);
    assert_eq!(r.code, 1, "{args:?}: exit {} (stderr: {})", r.code, r.err);
    let line = r
        .err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {}", r.err));
    for n in needles {
        assert!(line.contains(n), "{args:?}: '{n}' not in: {line}");
    }
    line.to_string()
}

fn ok(args: &[&str]) -> Run {
    let r = scorelab(args);
    assert_eq!(r.code, 0, "{args:?}: exit {} (stderr: {})", r.code, r.err);
    r
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn shipped_checkpoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/checkpoints/fashion-mnist-unet.safetensors")
}

fn write_npy(path: &Path, shape: &[usize], data: &[f64]) {
    score_io::npy::write_npy_f64(path, shape, data).unwrap();
}

/// A tiny UNet training run: 16 images, batch 2, width 8.
fn tiny_train<'a>(out: &'a str, steps: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--subset",
        "16",
        "--batch-size",
        "2",
        "--channels",
        "8",
        "--steps",
        steps,
        "--out",
        out,
        "--json",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn npy_with_a_huge_shape_is_an_error_not_an_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.npy");
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    std::fs::write(&p, bytes).unwrap();
    let out = dir.path().join("run");
    fails(
        &["train", "--data", s(&p), "--out", s(&out)],
        &["huge.npy", "shape"],
    );
    fails(
        &["gaussian", "fit", "--data", s(&p), "--out", s(&out)],
        &["huge.npy", "shape"],
    );
}

#[test]
fn idx_images_of_zero_size_are_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    score_io::idx::write_idx(&d.join("t10k-images-idx3-ubyte"), &[2, 0, 0], &[]).unwrap();
    score_io::idx::write_idx(&d.join("t10k-labels-idx1-ubyte"), &[2], &[0, 1]).unwrap();
    let out = d.join("run");
    fails(
        &[
            "train",
            "--data-dir",
            s(d),
            "--steps",
            "1",
            "--out",
            s(&out),
        ],
        &["t10k-images-idx3-ubyte", "0×0"],
    );
}

#[test]
fn unet_widths_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for w in ["0", "1", "3", "5", "9"] {
        let out = dir.path().join(format!("w{w}"));
        let mut args = tiny_train(s(&out), "1", &[]);
        let i = args.iter().position(|a| *a == "--channels").unwrap();
        args[i + 1] = w;
        fails(&args, &["--channels", "even"]);
    }
}

#[test]
fn zero_and_impossible_sample_counts_are_refused() {
    let ck = shipped_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&ck),
            "--n",
            "0",
            "--out",
            s(&out),
        ],
        &["--n"],
    );
    fails(&["demo", "--n", "0", "--out", s(&out)], &["--n"]);
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&ck),
            "--n",
            "4611686018427387904",
            "--out",
            s(&out),
        ],
        &["--n", "too large"],
    );
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&ck),
            "--n",
            "1000000000",
            "--out",
            s(&out),
        ],
        &["--n", "too large", "available"],
    );
    // Scientific notation is not an integer: clap refuses it (exit 2) naming the flag.
    let r = scorelab(&["sample", "--checkpoint", s(&ck), "--n", "1e9"]);
    assert!(r.code == 2 && r.err.contains("--n"), "{} {}", r.code, r.err);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
}

#[test]
fn huge_grids_and_kernel_fits_are_refused_before_allocating() {
    fails(
        &["sigmas", "--steps", "1000000000000"],
        &["steps", "too large"],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pts.npy");
    write_npy(&p, &[4, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let out = dir.path().join("k.safetensors");
    fails(
        &[
            "ntk",
            "fit",
            "--data",
            s(&p),
            "--n",
            "1000000",
            "--out",
            s(&out),
        ],
        &["--n", "too large"],
    );
    // A memory limit set for the process is honoured too.
    let r = scorelab_env(
        &["sigmas", "--steps", "100000"],
        &[("SCORELAB_MEMORY_LIMIT", "1K")],
    );
    assert!(
        r.code == 1 && r.err.contains("steps"),
        "{} {}",
        r.code,
        r.err
    );
}

#[test]
fn a_checkpoint_written_before_the_first_log_line_resumes() {
    // With a checkpoint every step and a log line every 20, the first checkpoint has no
    // loss yet (NaN): its metadata must still read back.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(&tiny_train(s(&out), "1", &["--checkpoint-every", "1"]));
    let r = ok(&tiny_train(s(&out), "2", &["--resume"]));
    assert!(r.out.contains("\"step\":2"), "{}", r.out);
}

#[test]
fn training_over_an_existing_run_needs_resume_or_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(&tiny_train(s(&out), "2", &[]));
    let before = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    fails(
        &tiny_train(s(&out), "1", &[]),
        &[
            "checkpoint.safetensors",
            "step 2",
            "--resume",
            "--overwrite",
        ],
    );
    assert_eq!(
        std::fs::read(out.join("checkpoint.safetensors")).unwrap(),
        before
    );
    ok(&tiny_train(s(&out), "1", &["--overwrite"]));
    let log = std::fs::read_to_string(out.join("train.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "the old run's log was kept: {log}");
}

#[test]
fn resume_drops_partial_and_later_log_lines_and_stale_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(&tiny_train(s(&out), "2", &[]));
    // A killed run: it logged step 3 after the checkpoint of step 2, then died in the
    // middle of a line and of a checkpoint write.
    let log = out.join("train.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"step\":3,\"loss\":0.5}\n{\"step\":4,\"lo");
    std::fs::write(&log, text).unwrap();
    let stale = out.join(".checkpoint.safetensors.tmp-4294967295");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    ok(&tiny_train(s(&out), "4", &["--resume"]));
    assert!(!stale.exists(), "stale temporary left behind");
    let steps: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
                ["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![2, 4]);
}

#[test]
fn non_finite_data_is_refused_where_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.npy");
    write_npy(&p, &[3, 2], &[0.0, 1.0, 2.0, 3.0, f64::NAN, 5.0]);
    let out = dir.path().join("out");
    fails(
        &[
            "gaussian",
            "fit",
            "--data",
            s(&p),
            "--out",
            s(&out.join("g.safetensors")),
        ],
        &["nan.npy", "row 2, column 0"],
    );
    fails(
        &["train", "--data", s(&p), "--out", s(&out)],
        &["nan.npy", "row 2, column 0"],
    );
    fails(
        &[
            "ntk",
            "fit",
            "--data",
            s(&p),
            "--out",
            s(&out.join("k.safetensors")),
        ],
        &["nan.npy", "row 2"],
    );
}

#[test]
fn arrays_of_the_wrong_shape_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r1 = d.join("rank1.npy");
    write_npy(&r1, &[6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // Rank 3 and 4 are image arrays since issue 28; rank 5 is neither images nor vectors.
    let r3 = d.join("rank5.npy");
    write_npy(&r3, &[2, 2, 2, 1, 1], &[0.5; 8]);
    for p in [&r1, &r3] {
        fails(
            &["train", "--data", s(p), "--out", s(&d.join("m"))],
            &[s(p), "shape"],
        );
    }
    // A d = 2 Gaussian and noise of shape [4, 2, 2]: refused, not "solved 8 points".
    let pts = d.join("pts.npy");
    write_npy(&pts, &[4, 2], &[0.0, 1.0, 1.0, 0.0, 2.0, 2.0, -1.0, 0.5]);
    let g = d.join("g.safetensors");
    ok(&["gaussian", "fit", "--data", s(&pts), "--out", s(&g)]);
    let noise = d.join("noise.npy");
    write_npy(&noise, &[4, 2, 2], &[0.1; 16]);
    let y = d.join("y.npy");
    for (cmd, flag) in [("solve", "--x-start"), ("sample", "--noise")] {
        let mut args = vec!["gaussian", cmd, "--model", s(&g), flag, s(&noise)];
        args.extend(["--out", s(&y)]);
        if cmd == "solve" {
            args.extend(["--sigma-start", "80", "--sigma-end", "1"]);
        }
        fails(&args, &["noise.npy", "[4, 2, 2]", "dimension 2"]);
    }
    // Issue 27: --noise meant a state in solve and unit noise in sample; solve's is
    // now --x-start, and the old name is refused with a pointer to it.
    let old = [
        "gaussian",
        "solve",
        "--model",
        s(&g),
        "--noise",
        s(&noise),
        "--out",
        s(&y),
    ];
    fails(
        &[&old[..], &["--sigma-start", "80", "--sigma-end", "1"]].concat(),
        &["--x-start"],
    );
}

#[test]
fn resume_applies_new_optimiser_settings_and_refuses_fixed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(&tiny_train(s(&out), "2", &[]));
    let r = ok(&tiny_train(
        s(&out),
        "3",
        &["--resume", "--lr", "1e-4", "--grad-clip", "0.5"],
    ));
    assert!(
        r.err.contains("lr 0.002 -> 0.0001") && r.err.contains("grad-clip"),
        "{}",
        r.err
    );
    let log = std::fs::read_to_string(out.join("train.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    // The run's warm-up was 2/4 + 1 = 1 step, so step 3 runs at the new peak lr.
    assert_eq!(last["step"], 3);
    assert!(
        (last["lr"].as_f64().unwrap() - 1e-4).abs() < 1e-12,
        "{last}"
    );
    for (flag, value) in [
        ("--channels", "16"),
        ("--batch-size", "4"),
        ("--subset", "32"),
        ("--seed", "7"),
    ] {
        let mut args = tiny_train(s(&out), "4", &["--resume"]);
        if let Some(i) = args.iter().position(|a| *a == flag) {
            args[i + 1] = value;
        } else {
            args.extend([flag, value]);
        }
        fails(&args, &[flag, value, "--resume cannot change it"]);
    }
}

#[test]
fn a_blow_up_stops_with_a_message_naming_the_checkpoint_state() {
    // Data of magnitude 1e30 with σ_data forced to 0.5 (the default, σ_data from the
    // data, would normalise them): the loss overflows float32 at the first step, before
    // any checkpoint exists.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.npy");
    write_npy(
        &p,
        &[4, 2],
        &[1e30, -1e30, 1e30, 1e30, -1e30, 1e30, 1e30, -1e30],
    );
    let out = dir.path().join("run");
    fails(
        &[
            "train",
            "--data",
            s(&p),
            "--steps",
            "3",
            "--sigma-data",
            "0.5",
            "--out",
            s(&out),
        ],
        &[
            "non-finite loss",
            "step 0",
            "no checkpoint had been written yet",
        ],
    );
}

#[test]
fn vp_and_ve_grids_honour_the_sigma_range() {
    for grid in ["vp", "ve"] {
        let r = ok(&[
            "sigmas",
            "--grid",
            grid,
            "--steps",
            "5",
            "--sigma-min",
            "0.5",
            "--sigma-max",
            "20",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
        let g: Vec<f64> = v["sigmas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(
            (g[0] - 20.0).abs() < 1e-9 && (g[4] - 0.5).abs() < 1e-9,
            "{grid}: {g:?}"
        );
    }
    // Without a range, EDM's VP grid starts at σ(1) ≈ 152.17.
    let r = ok(&["sigmas", "--grid", "vp", "--steps", "5", "--json"]);
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert!((v["sigmas"][0].as_f64().unwrap() - 152.17).abs() < 5e-3);
}

#[test]
fn musicscore_messages_blame_the_right_thing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broken = d.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("metadata.json"), b"{ not json").unwrap();
    fails(
        &["musicscore", "stats", "--root", s(&broken)],
        &["metadata", "cannot be read"],
    );
    // One bad escape in metadata.json used to drop every page's record without a
    // word: the pages are still read, and a warning names the file and the position.
    let shipped400 =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/musicscore/MisicScore-400");
    let escaped = d.join("escaped");
    for split in ["train", "val", "test"] {
        std::fs::create_dir_all(escaped.join(split)).unwrap();
        for e in std::fs::read_dir(shipped400.join(split)).unwrap().take(2) {
            let e = e.unwrap();
            std::fs::copy(e.path(), escaped.join(split).join(e.file_name())).unwrap();
        }
    }
    let meta = std::fs::read_to_string(shipped400.join("metadata.json")).unwrap();
    let at = meta.find(": \"").unwrap() + 3;
    let bad = format!("{}\\q{}", &meta[..at], &meta[at..]);
    std::fs::write(escaped.join("metadata.json"), bad).unwrap();
    let r = scorelab(&["musicscore", "stats", "--root", s(&escaped)]);
    assert_eq!(r.code, 0, "{}", r.err);
    let warning = r
        .err
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_default();
    assert!(
        warning.contains("metadata.json") && warning.contains("without their metadata"),
        "{}",
        r.err
    );
    // A layout whose only page cannot be used (not an IMSLP page name): export blames
    // the pages, not filters that were never given.
    let bad = d.join("bad");
    std::fs::create_dir_all(bad.join("train")).unwrap();
    std::fs::write(bad.join("train/scan.jpg"), b"x").unwrap();
    let line = fails(
        &[
            "musicscore",
            "export",
            "--root",
            s(&bad),
            "--out",
            s(&d.join("hf")),
        ],
        &["no readable pages", "verify"],
    );
    assert!(!line.contains("filters"), "{line}");
    // Caption dropout is training's: export refuses to freeze it into metadata.jsonl.
    fails(
        &[
            "musicscore",
            "export",
            "--root",
            s(&shipped400),
            "--out",
            s(&d.join("hf-dropout")),
            "--dropout",
            "0.1",
        ],
        &["--dropout", "training"],
    );
    let full = d.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/musicscore/MisicScore-400");
    fails(
        &[
            "musicscore",
            "export",
            "--root",
            s(&shipped),
            "--out",
            s(&full),
        ],
        &["--overwrite"],
    );
}

#[test]
fn fid_inputs_fail_cleanly_before_any_network_work() {
    // All of these are refused while reading the inputs, before the Inception weights
    // are loaded (so they fail the same with or without `cargo xtask fid-setup`).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let two = d.join("two.npy");
    score_io::npy::write_npy_f32(&two, &[2, 1, 4, 4], &[0.1; 32]).unwrap();
    let one = d.join("one.npy");
    score_io::npy::write_npy_f32(&one, &[1, 1, 4, 4], &[0.1; 16]).unwrap();
    let flat = d.join("flat.npy");
    score_io::npy::write_npy_f32(&flat, &[2, 5], &[0.1; 10]).unwrap();
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad_npz = d.join("bad.npz");
    std::fs::write(&bad_npz, b"not a zip").unwrap();
    let fid = |images: &std::path::Path,
               reference: &std::path::Path,
               extra: &[&str],
               needles: &[&str]| {
        let (i, r) = (s(images), s(reference));
        let mut args = vec!["fid", "--images", i.as_str(), "--ref", r.as_str()];
        args.extend_from_slice(extra);
        fails(&args, needles);
    };
    fid(&empty, &two, &[], &["empty", "no image files"]);
    fid(&d.join("nope.npy"), &two, &[], &["nope.npy"]);
    fid(&flat, &two, &[], &["flat.npy", "[n, h, w]"]);
    fid(&one, &two, &[], &["one.npy", "at least 2"]);
    fid(&two, &bad_npz, &[], &["bad.npz", "ZIP"]);
    fid(&two, &bad_npz, &["--kid"], &["--kid"]);
    fid(&two, &two, &["--batch", "0"], &["--batch"]);
    fid(&two, &two, &["--range", "percent"], &["--range"]);
}

#[test]
fn distill_refuses_bad_teachers_and_impossible_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    let teacher = shipped_checkpoint();
    let missing = dir.path().join("nope.safetensors");
    fails(
        &["distill", "--teacher", s(&missing), "--out", s(&out)],
        &["nope.safetensors"],
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    fails(
        &["distill", "--teacher", s(&junk), "--out", s(&out)],
        &["junk.safetensors"],
    );
    fails(
        &[
            "distill",
            "--teacher",
            s(&teacher),
            "--steps",
            "0",
            "--out",
            s(&out),
        ],
        &["steps"],
    );
    fails(
        &[
            "distill",
            "--teacher",
            s(&teacher),
            "--path-checkpoints",
            "9",
            "--record-steps",
            "4",
            "--out",
            s(&out),
        ],
        &["path", "9 checkpoints over 4 steps"],
    );
    fails(
        &[
            "distill",
            "--teacher",
            s(&teacher),
            "--order",
            "sideways",
            "--out",
            s(&out),
        ],
        &["--order", "sideways"],
    );
    fails(
        &[
            "distill",
            "--teacher",
            s(&teacher),
            "--lr",
            "nan",
            "--out",
            s(&out),
        ],
        &["lr"],
    );
    // Nothing was written by the refused runs.
    assert!(!out.join("generator.safetensors").exists());
}

/// Counts of zero that used to panic (issue 26): `musicscore evaluate --n 0` and
/// `--steps 0`, `scoreaug measure --n-eval 0` / `--n-samples 0`. Each is now an error
/// naming the flag.
#[test]
fn zero_counts_are_refused_by_flag() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/musicscore");
    let ev = s(&dir.path().join("ev"));
    let base = [
        "musicscore",
        "evaluate",
        "--root",
        root,
        "--no-fid",
        "--out",
        &ev,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|x| x.to_string()).collect()
    };
    let args = with(&["--n", "0", "--steps", "2"]);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["--n", "0"],
    );
    let args = with(&["--n", "1", "--steps", "0"]);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["steps"],
    );
    let run = s(&dir.path().join("run"));
    ok(&[
        "train",
        "--subset",
        "20",
        "--channels",
        "8",
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--out",
        &run,
    ]);
    let ck = format!("{run}/checkpoint.safetensors");
    for flag in ["--n-eval", "--n-samples"] {
        fails(
            &["scoreaug", "measure", "--checkpoint", &ck, flag, "0"],
            &[flag, "at least 1"],
        );
    }
    // A sample count that cannot fit is refused by flag before any sampling.
    fails(
        &[
            "scoreaug",
            "measure",
            "--checkpoint",
            &ck,
            "--n-samples",
            "1000000000000",
        ],
        &["--n-samples", "memory"],
    );
}

fn shipped_teacher() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/checkpoints/fashion-mnist-unet.safetensors"
    )
}

/// A tiny DisBack run into `out` (Stage 1 records a path, then two generator steps),
/// killed after the `kill_after`-th rename of its atomic writes when given.
fn tiny_distill(out: &Path, kill_after: Option<usize>) -> Run {
    let k = kill_after.map(|k| k.to_string());
    let env: Vec<(&str, &str)> = k
        .as_deref()
        .map(|k| ("SCORELAB_FAULT_ABORT_AFTER_RENAMES", k))
        .into_iter()
        .collect();
    let args = [
        "distill",
        "--teacher",
        shipped_teacher(),
        "--method",
        "disback",
        "--steps",
        "2",
        "--batch",
        "2",
        "--record-steps",
        "2",
        "--path-checkpoints",
        "2",
        "--switch-every",
        "1",
        "--fake-updates",
        "1",
        "--checkpoint-every",
        "1",
        "--out",
        s(out),
    ];
    scorelab_env(&args, &env)
}

/// The one-step samples of the generator in `run` (deterministic for a given file).
fn generator_samples(run: &Path, out: &Path) -> Vec<u8> {
    let g = run.join("generator.safetensors");
    ok(&["sample", "--checkpoint", s(&g), "--n", "4", "--out", s(out)]);
    std::fs::read(out.join("samples.npy")).unwrap()
}

#[test]
fn distill_killed_between_any_two_renames_resumes_to_the_uninterrupted_result() {
    // Issue 26: Stage 1's path + recording and the generator + fake score were two
    // renames each; a kill between them left parts at different steps ("invalid resume"
    // on every rerun, or different weights with exit 0).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = d.join("whole");
    assert_eq!(tiny_distill(&whole, None).code, 0);
    let reference = generator_samples(&whole, &d.join("s-whole"));
    let mut kills = 0;
    for k in 1.. {
        let run = d.join(format!("k{k}"));
        let r = tiny_distill(&run, Some(k));
        if r.code == 0 {
            break; // the run makes fewer than k renames
        }
        assert_eq!(r.code, 134, "kill after rename {k}: {}", r.err);
        kills += 1;
        let again = tiny_distill(&run, None);
        assert_eq!(
            again.code, 0,
            "rerun after a kill at rename {k}: {}",
            again.err
        );
        let got = generator_samples(&run, &d.join(format!("s{k}")));
        assert!(
            got == reference,
            "a kill after rename {k} changed the result"
        );
    }
    // Stage 1 saves twice and distillation twice, two files each.
    assert!(kills >= 8, "only {kills} renames were tried");
}

#[test]
fn a_run_folder_in_use_by_another_process_is_refused() {
    // Issue 26: two `train` processes into one --out both exited 0, one run was lost and
    // train.jsonl held every step twice. Here this test process holds the folder's lock.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let lock = std::fs::File::create(run.join(".scorelab.lock")).unwrap();
    lock.lock().unwrap();
    let train = tiny_train(s(&run), "1", &[]);
    fails(&train, &["in use by another scorelab process", s(&run)]);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/musicscore");
    fails(
        &[
            "musicscore",
            "train",
            "--root",
            root,
            "--steps",
            "1",
            "--out",
            s(&run),
        ],
        &["in use by another scorelab process"],
    );
    fails(
        &["distill", "--teacher", shipped_teacher(), "--out", s(&run)],
        &["in use by another scorelab process"],
    );
    assert!(!run.join("checkpoint.safetensors").exists());
    drop(lock);
    ok(&train);
}

#[test]
fn a_one_step_generator_is_refused_where_a_denoiser_is_needed() {
    // Issue 26: distill took a generator as its teacher, and demo, fid, ems and scoreaug
    // took it as a model, with Heun sampling through a network trained at one σ.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("g");
    assert_eq!(tiny_distill(&run, None).code, 0);
    let g = run.join("generator.safetensors");
    let other = dir.path().join("other");
    let needles = ["generator.safetensors", "one-step generator"];
    fails(
        &["distill", "--teacher", s(&g), "--out", s(&other)],
        &needles,
    );
    fails(
        &[
            "ems",
            "--checkpoint",
            s(&g),
            "--out",
            s(&other.join("e.json")),
        ],
        &needles,
    );
    fails(
        &["demo", "--checkpoint", s(&g), "--out", s(&other)],
        &needles,
    );
    fails(&["scoreaug", "measure", "--checkpoint", s(&g)], &needles);
}

#[test]
fn sizes_and_flags_that_hung_aborted_or_were_reinterpreted_are_refused() {
    // Issue 26, findings 3-6.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A PNG whose header declares 60000 x 60000 (10.8 GB) and holds no pixels.
    let bombs = d.join("bombs");
    std::fs::create_dir_all(&bombs).unwrap();
    for i in 0..2 {
        let f = std::fs::File::create(bombs.join(format!("{i}.png"))).unwrap();
        let mut enc = png::Encoder::new(f, 60000, 60000);
        enc.set_color(png::ColorType::Rgb);
        let mut w = enc.write_header().unwrap();
        // One IDAT chunk (an empty zlib stream), so that the header reads through.
        let empty_zlib = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
        w.write_chunk(png::chunk::IDAT, &empty_zlib).unwrap();
    }
    let two = d.join("two.npy");
    score_io::npy::write_npy_f32(&two, &[2, 1, 4, 4], &[0.1; 32]).unwrap();
    fails(
        &["fid", "--images", s(&bombs), "--ref", s(&two)],
        &["0.png", "60000 x 60000", "decompression-bomb"],
    );
    fails(
        &[
            "fid",
            "--images",
            s(&two),
            "--ref",
            s(&two),
            "--bootstrap",
            "1000000000",
        ],
        &["--bootstrap 1000000000", "at most"],
    );
    fails(
        &[
            "ems",
            "--checkpoint",
            s(&shipped_checkpoint()),
            "--n",
            "1000000000",
            "--out",
            s(&d.join("e.json")),
        ],
        &["--n", "too large"],
    );
    fails(
        &["--threads", "100000", "sigmas"],
        &["--threads 100000", "per core"],
    );
    let run = d.join("run");
    let train = |flag: &'static str, v: &'static str, needles: &[&str]| {
        fails(&tiny_train(s(&run), "1", &[flag, v]), needles);
    };
    let pts = d.join("pts.npy");
    write_npy(&pts, &[4, 2], &[0.0, 1.0, 1.0, 0.0, 2.0, 1.0, 1.0, 2.0]);
    fails(
        &[
            "gaussian",
            "fit",
            "--data",
            s(&pts),
            "--components",
            "0",
            "--out",
            s(&d.join("g.json")),
        ],
        &["--components 0"],
    );
    train("--grad-clip", "NaN", &["--grad-clip NaN"]);
    fails(
        &[
            "train",
            "--data",
            "fashion-mnist-test",
            "--subset",
            "16",
            "--steps",
            "1",
            "--channels",
            "100000",
            "--out",
            s(&run),
        ],
        &["--batch-size/--channels", "too large"],
    );
    train(
        "--checkpoint-every",
        "0",
        &["--checkpoint-every", "at least 1"],
    );
    let ck = shipped_checkpoint();
    let out = d.join("s");
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&ck),
            "--sampler",
            "ddim",
            "--eta",
            "1.5",
            "--out",
            s(&out),
        ],
        &["--eta 1.5", "0 to 1"],
    );
    fails(
        &[
            "distill",
            "--teacher",
            s(&ck),
            "--record-steps",
            "4000000000000000000",
            "--path-checkpoints",
            "4000000000000000000",
            "--out",
            s(&d.join("d")),
        ],
        &["--path-checkpoints", "too large"],
    );
    fails(
        &[
            "distill",
            "--teacher",
            s(&ck),
            "--batch",
            "100000000",
            "--out",
            s(&d.join("d2")),
        ],
        &["--batch", "too large"],
    );

    fails(
        &[
            "musicscore",
            "generate",
            "--n",
            "1000000000",
            "--out",
            s(&d.join("m")),
        ],
        &["--n", "too large"],
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn musicscore_outputs_never_replace_their_source() {
    // Issue 26: export --overwrite with --out = --root replaced the corpus, with --out
    // its parent deleted it; preview --out on a source page overwrote it.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/musicscore"),
        &root,
    );
    let before = std::fs::read_dir(&root).unwrap().count();
    for out in [root.clone(), dir.path().to_path_buf()] {
        fails(
            &[
                "musicscore",
                "export",
                "--root",
                s(&root),
                "--out",
                s(&out),
                "--overwrite",
            ],
            &["--out", "--root"],
        );
    }
    let page = std::fs::read_dir(root.join("MusicScore-14K"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .unwrap();
    let bytes = std::fs::read(&page).unwrap();
    fails(
        &[
            "musicscore",
            "preview",
            "--root",
            s(&root),
            "--out",
            s(&page),
        ],
        &["--out", "lies inside", "--root"],
    );
    assert_eq!(std::fs::read(&page).unwrap(), bytes);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), before);
}

#[test]
fn ctrl_c_during_train_saves_names_the_checkpoint_and_resumes() {
    // Issue 26: Ctrl-C during `train` exited with no word of the last checkpoint (and
    // lost the steps since it).
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = |steps: &'static str| {
        vec![
            "train",
            "--data",
            "fashion-mnist-test",
            "--subset",
            "16",
            "--steps",
            steps,
            "--batch-size",
            "4",
            "--channels",
            "8",
            "--checkpoint-every",
            "100000",
            "--out",
            s(&run),
        ]
    };
    let child = Command::new(env!("CARGO_BIN_EXE_scorelab"))
        .args(args("1000000"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The lock file appears when the run folder is opened; whenever the signal lands
    // after the handler is installed, the run stops at the end of a step.
    while !run.join(".scorelab.lock").exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        line.contains("interrupted after step") && line.contains("--resume"),
        "{line}"
    );
    let step: usize = line["error: interrupted after step ".len()..]
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        line.contains(&format!("the checkpoint of step {step} is kept")),
        "{line}"
    );
    let ck = score_train::checkpoint::CheckpointFile::read(&run.join("checkpoint.safetensors"));
    assert_eq!(ck.unwrap().meta.step, step);
    let next = (step + 1).to_string();
    let mut resume = args("1");
    resume[6] = &next;
    resume.push("--resume");
    ok(&resume);
    // Resuming a finished run runs no step: it says so instead of "loss NaN".
    let again = ok(&resume);
    assert!(
        again.out.contains("nothing to train") && !again.out.contains("NaN"),
        "{}",
        again.out
    );
}

/// Sizes that cannot fit are refused by flag before anything is allocated (issue 26:
/// `ems --points 10^11` and `fid --checkpoint --n 10^12` aborted allocating).
#[test]
fn ems_points_and_fid_sample_counts_that_cannot_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = shipped_checkpoint();
    let out = dir.path().join("ems.json");
    fails(
        &[
            "ems",
            "--checkpoint",
            s(&ck),
            "--data",
            "fashion-mnist-test",
            "--points",
            "100000000000",
            "--out",
            s(&out),
        ],
        &["--points", "memory"],
    );
    fails(
        &[
            "fid",
            "--checkpoint",
            s(&ck),
            "--n",
            "1000000000000",
            "--ref",
            "fashion-mnist-heldout",
        ],
        &["--n", "memory"],
    );
}

/// A preview sheet too large to hold is refused by flag (issue 26: `--thumb 10^9`
/// aborted allocating the sheet).
#[test]
fn preview_sheets_that_cannot_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sheet.png");
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/musicscore/MisicScore-400"
    );
    fails(
        &[
            "musicscore",
            "preview",
            "--root",
            root,
            "--n",
            "2",
            "--thumb",
            "1000000000",
            "--out",
            s(&out),
        ],
        &["--thumb/--cols"],
    );
    fails(
        &[
            "musicscore",
            "preview",
            "--root",
            root,
            "--n",
            "2",
            "--tiles",
            "2000000000",
            "--out",
            s(&out),
        ],
        &["--tiles/--cols"],
    );
}

/// A text-to-score geometry whose training step cannot fit is refused by flag before
/// any page is read (issue 26).
#[test]
fn text_to_score_geometries_that_cannot_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ms");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/musicscore");
    fails(
        &[
            "musicscore",
            "train",
            "--root",
            root,
            "--geometry",
            "4096x4096@0.5",
            "--steps",
            "1",
            "--out",
            s(&out),
        ],
        &["--geometry/--batch", "memory"],
    );
    // So large that reading the pages at it would be killed for memory (issue 31 had
    // moved the check after the reading).
    fails(
        &[
            "musicscore",
            "train",
            "--root",
            root,
            "--geometry",
            "100000x100000@0.5",
            "--steps",
            "1",
            "--out",
            s(&out),
        ],
        &["--geometry/--batch", "memory"],
    );
}

/// `musicscore train-ae` settings the autoencoder cannot train with, and sizes that
/// cannot fit, are refused before any page is read: they panicked in burn's
/// initialiser (0 latent channels), aborted (a huge batch), were killed for memory (a
/// huge geometry) or trained on NaN (the KL weight).
#[test]
fn autoencoder_settings_and_sizes_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ae");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/musicscore");
    let cases: [(&str, &str, &[&str]); 5] = [
        ("--latent-channels", "0", &["latent channels"]),
        ("--latent-channels", "100000000", &["latent channels"]),
        ("--kl-weight", "nan", &["KL weight"]),
        (
            "--batch",
            "100000000",
            &["--geometry/--crop/--batch", "memory"],
        ),
        (
            "--geometry",
            "100000x100000@0.5",
            &["--geometry/--crop/--batch", "memory"],
        ),
    ];
    for (flag, value, needles) in cases {
        let args = [
            "musicscore",
            "train-ae",
            "--root",
            root,
            flag,
            value,
            "--steps",
            "1",
            "--out",
            s(&out),
        ];
        fails(&args, needles);
    }
}

/// `export --resize` sizes whose images (or the page scaled before a crop) exceed the
/// image-size limit are refused by flag, not attempted (issue 26: crop:50000x1 scaled
/// each page to billions of pixels and ran for minutes).
#[test]
fn export_resizes_beyond_the_image_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/musicscore/MisicScore-400"
    );
    for (i, resize) in ["crop:50000x1", "fit:100000x100000"].iter().enumerate() {
        let out = dir.path().join(format!("x{i}"));
        fails(
            &[
                "musicscore",
                "export",
                "--root",
                root,
                "--resize",
                resize,
                "--out",
                s(&out),
            ],
            &["--resize", "pixels"],
        );
    }
}

/// `fails`, but the command must end within `secs` seconds (killed and failed if not).
fn fails_within(args: &[&str], needles: &[&str], secs: u64) {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_scorelab"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("{args:?}: still running after {secs} s (a hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{args:?}: {status} ({err})");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in: {err}");
    }
}

#[test]
fn a_fifo_or_a_device_as_input_is_refused_not_waited_on() {
    // Issue 26: a FIFO given as a checkpoint or an image blocked for ever.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.npy");
    let st = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(st.success());
    let f = s(&fifo);
    let out = dir.path().join("o");
    let o = s(&out);
    let not_regular = ["pipe.npy", "not a regular file"];
    fails_within(
        &["sample", "--checkpoint", f, "--n", "1", "--out", o],
        &not_regular,
        60,
    );
    fails_within(
        &["train", "--data", f, "--steps", "1", "--out", o],
        &not_regular,
        60,
    );
    fails_within(&["fid", "--images", f, "--ref", f], &not_regular, 60);
    fails_within(
        &["gaussian", "fit", "--data", f, "--out", o],
        &not_regular,
        60,
    );
    fails_within(
        &["train", "--config", f, "--out", o],
        &["pipe.npy", "not a run file"],
        60,
    );
    let dev = ["/dev/zero", "not a regular file"];
    fails_within(
        &["sample", "--checkpoint", "/dev/zero", "--out", o],
        &dev,
        60,
    );
}

#[test]
fn tampered_fid_weights_are_refused_by_their_digest() {
    // Issue 26: changed Inception weights gave a NaN FID (or a wrong one) with exit 0.
    // The set-up's sha256 marker is checked when the weights are loaded.
    let installed = score_core::fs::cache_dir().join("fid/inception-2015-12-05.safetensors");
    if !installed.is_file() {
        eprintln!("skipped: run `cargo xtask fid-setup` (CI does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("fid")).unwrap();
    let weights = cache.join("fid/inception-2015-12-05.safetensors");
    let mut bytes = std::fs::read(&installed).unwrap();
    let marker = installed.with_extension("safetensors.sha256");
    std::fs::copy(&marker, weights.with_extension("safetensors.sha256")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    let two = dir.path().join("two.npy");
    score_io::npy::write_npy_f32(&two, &[2, 1, 8, 8], &[0.1; 128]).unwrap();
    let env = [("SCORELAB_CACHE", cache.to_str().unwrap())];
    let r = scorelab_env(&["fid", "--images", s(&two), "--ref", s(&two)], &env);
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(
        r.err.contains("sha256") && r.err.contains("fid-setup"),
        "{}",
        r.err
    );
    // Without the marker beside them, the weights are refused too.
    std::fs::remove_file(weights.with_extension("safetensors.sha256")).unwrap();
    let r = scorelab_env(&["fid", "--images", s(&two), "--ref", s(&two)], &env);
    assert!(r.code == 1 && r.err.contains("fid-setup"), "{}", r.err);
}

#[test]
fn a_tampered_text_encoder_is_refused_by_its_digest() {
    // Issue 26: changed MiniLM weights gave black images with exit 0.
    let installed = score_core::fs::cache_dir().join("minilm");
    if !installed.join("model.safetensors").is_file() {
        eprintln!("skipped: run `cargo xtask minilm-setup` (CI does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let minilm = cache.join("minilm");
    std::fs::create_dir_all(&minilm).unwrap();
    for f in ["tokenizer.json", "config.json"] {
        std::fs::copy(installed.join(f), minilm.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(installed.join("model.safetensors")).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(minilm.join("model.safetensors"), &bytes).unwrap();
    let out = dir.path().join("g");
    let env = [("SCORELAB_CACHE", cache.to_str().unwrap())];
    let args = [
        "musicscore",
        "generate",
        "--prompt",
        "a music score, instrumentation is violin",
        "--n",
        "1",
        "--steps",
        "2",
        "--out",
        s(&out),
    ];
    let r = scorelab_env(&args, &env);
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(
        r.err.contains("sha256") && r.err.contains("minilm-setup"),
        "{}",
        r.err
    );
}

#[test]
fn flags_that_do_not_apply_are_refused_not_ignored() {
    // Issue 26 (reinterpreted flags): teleportation's settings without `--teleport`, and
    // `fid`'s sampling sizes with `--images`, used to be ignored silently.
    let ck = shipped_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    for flag in [
        ["--vp", ""],
        ["--skip", "3"],
        ["--skip-sigma", "10"],
        ["--skip-threshold", "0.9"],
    ] {
        let mut args = vec!["sample", "--checkpoint", ck.to_str().unwrap(), "--n", "1"];
        args.extend(flag.iter().filter(|f| !f.is_empty()));
        args.extend(["--out", out.to_str().unwrap()]);
        fails(&args, &[flag[0], "--teleport"]);
    }
    assert!(!out.join("samples.npy").exists());
    let a = dir.path().join("a.npy");
    write_npy(&a, &[4, 8, 8], &[0.0; 256]);
    for flag in ["--n", "--steps"] {
        let args = ["fid", "--images", s(&a), "--ref", s(&a), flag, "5"];
        fails(&args, &["--n/--steps", "--images"]);
    }
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    // Issue 26, third round: `fid-stats --out` equal to `--images` replaced the images
    // with their statistics, `ems --out` equal to `--checkpoint` the checkpoint with a
    // JSON file, `gaussian fit --out` equal to `--data` the data with a model.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    write_npy(&p("img.npy"), &[4, 1, 8, 8], &[0.25; 256]);
    write_npy(
        &p("v.npy"),
        &[20, 3],
        &(0..60).map(f64::from).collect::<Vec<_>>(),
    );
    std::fs::copy(shipped_checkpoint(), p("ck.safetensors")).unwrap();
    // The same file by another path counts too.
    std::os::unix::fs::symlink(p("v.npy"), p("link.npy")).unwrap();
    let before: Vec<Vec<u8>> = ["img.npy", "v.npy", "ck.safetensors"]
        .iter()
        .map(|n| std::fs::read(p(n)).unwrap())
        .collect();
    let (img, v, ck, link) = (p("img.npy"), p("v.npy"), p("ck.safetensors"), p("link.npy"));
    let cases: [(&[&str], &str); 6] = [
        (
            &["fid-stats", "--images", s(&img), "--out", s(&img)],
            "--images",
        ),
        (
            &[
                "ems",
                "--checkpoint",
                s(&ck),
                "--n",
                "2",
                "--points",
                "2",
                "--out",
                s(&ck),
            ],
            "--checkpoint",
        ),
        (
            &["gaussian", "fit", "--data", s(&v), "--out", s(&link)],
            "--data",
        ),
        (
            &["ntk", "gram", "--inputs", s(&v), "--out", s(&v)],
            "--inputs",
        ),
        (
            &["ntk", "fit", "--data", s(&v), "--n", "8", "--out", s(&v)],
            "--data",
        ),
        (
            &[
                "denoise",
                "--checkpoint",
                s(&ck),
                "--x",
                s(&img),
                "--sigma",
                "1",
                "--out",
                s(&img),
            ],
            "--x",
        ),
    ];
    for (args, input) in cases {
        fails(
            args,
            &["--out", &format!("is {input}"), "replace the input"],
        );
    }
    for (n, b) in ["img.npy", "v.npy", "ck.safetensors"].iter().zip(before) {
        assert_eq!(std::fs::read(p(n)).unwrap(), b, "{n} changed");
    }
}

#[test]
fn negative_numbers_reach_the_flags_own_check() {
    // clap took `-1` for a flag and said "unexpected argument '-1' found".
    let ck = shipped_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let sample = [
        "sample",
        "--checkpoint",
        s(&ck),
        "--n",
        "1",
        "--out",
        s(&out),
    ];
    fails(
        &[&sample[..], &["--churn", "-1"]].concat(),
        &["--churn", "non-negative"],
    );
    fails(&["sigmas", "--sigma-min", "-1"], &["sigma_min = -1"]);
    fails(
        &[&tiny_train(s(&out), "2", &[])[..], &["--lr", "-0.5"]].concat(),
        &["lr", "positive", "-0.5"],
    );
}

#[test]
fn flags_that_would_be_reinterpreted_or_ignored_are_refused() {
    // Issue 26, third round: each of these ran, taking the flag as something else or
    // not at all.
    let ck = shipped_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = s(&out);
    let sample = ["sample", "--checkpoint", s(&ck), "--n", "1", "--out", o];
    // Heun's churn window without churn, or empty.
    fails(
        &[&sample[..], &["--s-noise", "1.1"]].concat(),
        &["--s-noise", "--churn"],
    );
    fails(
        &[
            &sample[..],
            &["--churn", "5", "--s-tmin", "5", "--s-tmax", "1"],
        ]
        .concat(),
        &["--s-tmin 5", "--s-tmax 1"],
    );
    // A subset larger than the data set (the log said "balanced subset of 100000").
    fails(
        &["train", "--subset", "100000", "--steps", "1", "--out", o],
        &["--subset 100000", "10000 images"],
    );
    let v = dir.path().join("v.npy");
    write_npy(&v, &[20, 3], &(0..60).map(f64::from).collect::<Vec<_>>());
    fails(
        &[
            "train",
            "--data",
            s(&v),
            "--subset",
            "4",
            "--steps",
            "1",
            "--out",
            o,
        ],
        &["--subset", "vectors"],
    );
    // The kernel fit's time range, search bound and rwy's noise level.
    let fit = ["ntk", "fit", "--data", s(&v), "--n", "8", "--out", o];
    fails(
        &[&fit[..], &["--t0", "5", "--t-max", "3"]].concat(),
        &["--t0/--t-max"],
    );
    fails(&[&fit[..], &["--k-max", "0"]].concat(), &["--k-max"]);
    fails(
        &[&fit[..], &["--sigma-hat", "1"]].concat(),
        &["--sigma-hat", "--stop rwy"],
    );
    // EV at σ = 0 (a table of NaN) and with no probes (a panic).
    fails(
        &["gaussian", "ev", "--sigmas", "0,1", "--out", o],
        &["--sigmas", "got 0"],
    );
    fails(
        &["gaussian", "ev", "--probes", "0", "--out", o],
        &["--probes"],
    );
    // MusicScore: reversed ranges matched nothing; export's qualifiers without what
    // they qualify; an empty or zero-column preview.
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/musicscore/MisicScore-400"
    );
    fails(
        &["musicscore", "stats", "--root", root, "--pages", "5-2"],
        &["--pages", "reversed", "2-5"],
    );
    fails(
        &["musicscore", "stats", "--root", root, "--ink", "0.5-0.1"],
        &["--ink", "reversed"],
    );
    fails(
        &[
            "musicscore",
            "export",
            "--root",
            root,
            "--color",
            "rgb",
            "--out",
            o,
        ],
        &["--color", "--resize"],
    );
    fails(
        &[
            "musicscore",
            "export",
            "--root",
            root,
            "--group-by",
            "work",
            "--out",
            o,
        ],
        &["--group-by", "--resplit"],
    );
    let png = dir.path().join("p.png");
    for flag in ["--n", "--cols", "--thumb"] {
        fails(
            &[
                "musicscore",
                "preview",
                "--root",
                root,
                flag,
                "0",
                "--out",
                s(&png),
            ],
            &[flag],
        );
    }
    assert!(!out.join("checkpoint.safetensors").exists() && !png.exists());
}

#[test]
fn messages_say_what_the_file_is_and_what_to_do() {
    // Issue 26, third round: unclear messages.
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("o");
    let npy = dir.path().join("x.npy");
    write_npy(&npy, &[2, 3], &[0.0; 6]);
    // A .npy given as a checkpoint: "header: header too large".
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&npy),
            "--n",
            "1",
            "--out",
            s(&o),
        ],
        &["not a checkpoint", ".npy array"],
    );
    // Which of two flags is wrong.
    fails(
        &["train", "--subset", "16", "--steps", "0", "--out", s(&o)],
        &["invalid steps"],
    );
    fails(
        &[
            "musicscore",
            "generate",
            "--n",
            "1",
            "--steps",
            "1",
            "--out",
            s(&o),
        ],
        &["--steps", "got 1"],
    );
    // A diffusers folder without weights: the message spoke of a .bin that was not there.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let line = fails(
        &["import", "diffusers", s(&empty), "--out", s(&o)],
        &["no diffusion_pytorch_model.safetensors"],
    );
    assert!(!line.contains(".bin"), "{line}");
    // A size the UNet cannot halve: the nearest sizes that work.
    fails(
        &[
            "train",
            "--subset",
            "16",
            "--resolution",
            "17",
            "--steps",
            "1",
            "--out",
            s(&o),
        ],
        &["17", "16 or 20", "--resolution"],
    );
    // Fashion-MNIST away from the checkout: every folder tried, and the remedies.
    let r = scorelab_env(
        &["train", "--steps", "1", "--out", s(&o)],
        &[
            ("SCORELAB_DATA_DIR", s(&empty)),
            ("SCORELAB_CACHE", s(&empty)),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.err);
    for needle in [
        "is in none of",
        s(&empty),
        "--data-dir",
        "SCORELAB_DATA_DIR",
    ] {
        assert!(r.err.contains(needle), "'{needle}' not in {}", r.err);
    }
}
