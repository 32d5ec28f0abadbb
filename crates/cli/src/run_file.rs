//! `scorelab train --config run.toml`: a run file whose keys are the flags of `train`
//! (and the global `seed`, `device`, `threads`), flags on the command line overriding
//! it. `config.toml`, the effective configuration every run writes beside its
//! checkpoint, is `scorelab_run::run_file`'s.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::Path;

/// A run file's largest size: its keys are a few dozen flags.
const MAX_BYTES: u64 = 1 << 20;

/// Keys a run file may not hold: help, version, and `config` itself (no nesting).
pub(crate) const NOT_KEYS: [&str; 3] = ["help", "version", "config"];

/// A TOML scalar as a flag's value (`None` for tables, dates and nested arrays).
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// The flags a run file stands for, in the file's order; every key checked against
/// `train`'s flags and every value against the flag's kind, errors naming the file
/// and the key.
pub(crate) fn flags_of(path: &Path, known: &[(String, bool)]) -> Result<Vec<OsString>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("--config {}: cannot read it", path.display()))?;
    if !meta.is_file() || meta.len() > MAX_BYTES {
        bail!(
            "--config {}: not a run file (a regular file of at most {MAX_BYTES} bytes)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config {}: cannot read it", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("--config {}: not TOML: {e}", path.display()))?;
    let mut flags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let at = || format!("--config {}: key '{key}'", path.display());
        let Some(&(_, switch)) = known.iter().find(|(l, _)| *l == flag) else {
            bail!(
                "{}: not a flag of `scorelab train` (keys are the flags without --, e.g. steps, batch_size, data)",
                at()
            );
        };
        if !seen.insert(flag.clone()) {
            bail!("{}: given twice (as - and _ spellings)", at());
        }
        match (switch, value) {
            (true, toml::Value::Boolean(true)) => flags.push(format!("--{flag}").into()),
            (true, toml::Value::Boolean(false)) => {}
            (true, _) => bail!("{}: a switch; write true or false", at()),
            (false, toml::Value::Boolean(_)) => {
                bail!("{}: takes a value, not true/false", at())
            }
            (false, v) => {
                let text = match v {
                    toml::Value::Array(items) => items
                        .iter()
                        .map(scalar)
                        .collect::<Option<Vec<_>>>()
                        .map(|x| x.join(",")),
                    v => scalar(v),
                }
                .with_context(|| {
                    format!("{}: expected a string, a number or a list of them", at())
                })?;
                flags.push(format!("--{flag}").into());
                flags.push(text.into());
            }
        }
    }
    Ok(flags)
}

/// The command line with a run file's flags placed right after `train`, so that the
/// flags given on the command line, which come later, override them.
pub(crate) fn splice(argv: &[OsString], file_flags: Vec<OsString>) -> Result<Vec<OsString>> {
    let at = argv
        .iter()
        .skip(1)
        .position(|a| a == "train")
        .context("--config: `train` not found on the command line")?
        + 2;
    let mut out = argv[..at].to_vec();
    out.extend(file_flags);
    out.extend_from_slice(&argv[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use scorelab_run::run_file::{RUN_FILE, write};
    use scorelab_run::train_data::new_precond;
    use scorelab_run::train_spec::settings;

    fn parse(argv: &[&str]) -> crate::Cli {
        crate::Cli::try_parse_from(argv).unwrap()
    }

    #[test]
    fn every_train_flag_is_a_key_and_switches_are_known() {
        let flags = crate::train_flags();
        let get = |k: &str| flags.iter().find(|(l, _)| l == k).map(|f| f.1);
        assert_eq!(get("steps"), Some(false));
        assert_eq!(get("xflip"), Some(true));
        assert_eq!(get("seed"), Some(false), "global flags are keys too");
        assert_eq!(get("config"), None);
    }

    #[test]
    fn file_flags_come_before_the_command_line_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("run.toml");
        std::fs::write(
            &f,
            "steps = 7\nbatch_size = 4\nxflip = true\nadam_betas = [0.8, 0.99]\nseed = 3\n",
        )
        .unwrap();
        let argv: Vec<OsString> = ["scorelab", "train", "--steps", "9", "--config"]
            .iter()
            .map(OsString::from)
            .chain([f.clone().into_os_string()])
            .collect();
        let spliced = splice(&argv, flags_of(&f, &crate::train_flags()).unwrap()).unwrap();
        let cli = crate::parse_with_overrides(spliced).unwrap();
        let crate::Command::Train(a) = &cli.command else {
            panic!("train")
        };
        assert_eq!(a.steps, Some(9), "the command line wins");
        assert_eq!(a.batch_size, Some(4));
        assert!(a.xflip);
        assert_eq!(a.adam_betas.as_deref(), Some("0.8,0.99"));
        assert_eq!(cli.common.seed_arg, Some(3));
    }

    #[test]
    fn bad_keys_and_values_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("run.toml");
        for (text, want) in [
            ("stpes = 3\n", "key 'stpes': not a flag"),
            ("xflip = 1\n", "key 'xflip': a switch"),
            ("steps = true\n", "key 'steps': takes a value"),
            ("steps = { a = 1 }\n", "key 'steps': expected a string"),
            ("batch_size = 2\nbatch-size = 3\n", "given twice"),
            ("config = \"x.toml\"\n", "key 'config': not a flag"),
            ("steps = \n", "not TOML"),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = flags_of(&f, &crate::train_flags()).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("run.toml"), "{text}: {e}");
        }
        for p in [dir.path(), Path::new("/dev/zero")] {
            let e = flags_of(p, &crate::train_flags()).unwrap_err().to_string();
            assert!(e.contains("not a run file"), "{e}");
        }
    }

    #[test]
    fn the_effective_configuration_reads_back_as_the_same_settings() {
        let c = parse(&[
            "scorelab",
            "--seed",
            "5",
            "train",
            "--data",
            "fashion-mnist-test",
            "--steps",
            "12",
            "--lr",
            "0.0005",
            "--lr-schedule",
            "inverse-sqrt:70",
            "--grad-clip",
            "1.5",
            "--cond",
            "class",
            "--label-dropout",
            "0.2",
            "--augment",
            "scoreaug",
            "--aug-transforms",
            "flip,cutout",
            "--no-aug-cond",
            "--arch",
            "adm",
            "--blocks",
            "1",
            "--xflip",
            "--resolution",
            "24",
            "--sigma-data",
            "0.6123456789012345",
        ]);
        let crate::Command::Train(a) = &c.command else {
            panic!("train")
        };
        let sa = a.spec(&c.common).unwrap();
        let (mut cfg, rec, _) = settings(&sa, Path::new("x"), None).unwrap();
        cfg.precond = new_precond(sa.sigma_data, "x", &mut std::iter::empty()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &cfg, &rec).unwrap();
        let f = dir.path().join(RUN_FILE);
        let argv: Vec<OsString> = ["scorelab", "train"].map(OsString::from).to_vec();
        let again = crate::parse_with_overrides(
            splice(&argv, flags_of(&f, &crate::train_flags()).unwrap()).unwrap(),
        )
        .unwrap();
        let crate::Command::Train(b) = &again.command else {
            panic!("train")
        };
        let sb = b.spec(&again.common).unwrap();
        let (mut cfg2, rec2, _) = settings(&sb, Path::new("x"), None).unwrap();
        cfg2.precond = new_precond(sb.sigma_data, "x", &mut std::iter::empty()).unwrap();
        assert_eq!(json(&cfg), json(&cfg2));
        assert_eq!(json(&rec), json(&rec2));
        assert_eq!(b.sigma_data, Some(0.6123456789012345), "σ_data exactly");
    }

    fn json<T: serde::Serialize>(x: &T) -> String {
        serde_json::to_string(x).unwrap()
    }
}
