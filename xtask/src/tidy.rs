//! Tidy checks of the source tree, run as tests (as rust-analyzer does) and by
//! `cargo xtask tidy`: no function outside tests longer than [`MAX_FN_LINES`] lines, and
//! no module that imports (`crate::`/`super::` paths) a module that imports it back,
//! directly or through others.
//!
//! Both read the sources as text: a function is a line starting (after indentation and
//! visibility) with `fn name`, measured to its matching brace; `#[cfg(test)] mod`
//! blocks are skipped. String and character literals and `//` comments are blanked
//! before braces are counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest function allowed outside tests.
pub const MAX_FN_LINES: usize = 80;

/// The workspace root: the parent of xtask's manifest folder, taken from the
/// environment cargo sets when it runs xtask or its tests (a build cache shared by two
/// checkouts would otherwise point at the checkout that compiled it), else from the
/// build.
pub fn workspace_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A line without its `//` comment and with string and character literals blanked.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_str = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push('"');
            }
            '/' if chars.peek() == Some(&'/') => break,
            '\'' => {
                // A char literal ('{', '\n') or a lifetime ('a): skip only the former.
                let rest: String = chars.clone().take(3).collect();
                let lit = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if lit {
                    while let Some(x) = chars.next() {
                        if x == '\\' {
                            chars.next();
                        } else if x == '\'' {
                            break;
                        }
                    }
                    out.push_str("' '");
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The index of the line that closes the block opened at or after line `i`, and
/// whether a block was opened at all (a declaration ending in `;` opens none).
fn block_end(code: &[String], i: usize) -> (usize, bool) {
    let mut depth = 0i64;
    let mut opened = false;
    for (k, line) in code.iter().enumerate().skip(i) {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return (k, true);
        }
        if !opened && line.trim_end().ends_with(';') {
            return (k, false);
        }
    }
    (code.len().saturating_sub(1), opened)
}

/// The name of the function a line declares, if it declares one.
fn fn_name(line: &str) -> Option<&str> {
    let mut t = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        t = t.strip_prefix(prefix).unwrap_or(t);
    }
    let rest = t.strip_prefix("fn ")?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Functions outside tests longer than `max` lines, as (lines, file, name).
pub fn long_functions(root: &Path, max: usize) -> Vec<(usize, PathBuf, String)> {
    let mut found = Vec::new();
    for dir in ["crates", "xtask/src", "benches"] {
        for file in rust_files(&root.join(dir)) {
            if file.components().any(|c| c.as_os_str() == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let code: Vec<String> = text.lines().map(code_of).collect();
            let mut i = 0;
            while i < code.len() {
                let test_mod = code[i].trim_start().starts_with("#[cfg(test)]")
                    && code.get(i + 1).is_some_and(|l| {
                        let l = l.trim_start();
                        l.starts_with("mod ") || l.starts_with("pub mod ")
                    });
                if test_mod {
                    i = block_end(&code, i + 1).0 + 1;
                    continue;
                }
                if let Some(name) = fn_name(&code[i]) {
                    let (end, body) = block_end(&code, i);
                    if body && end - i + 1 > max {
                        found.push((end - i + 1, file.clone(), name.to_string()));
                    }
                    if body {
                        i = end + 1;
                        continue;
                    }
                }
                i += 1;
            }
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}

/// The module path of `file` within its crate's `src` (`""` for the root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The modules of one crate and the modules each refers to through `crate::` or
/// `super::` paths outside its tests (the crate root's own references count too).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let mods: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let body = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            let code: Vec<String> = body.lines().map(code_of).collect();
            (module_of(src, f), code.join("\n"))
        })
        .collect();
    let mut graph = BTreeMap::new();
    for (m, code) in &mods {
        let mut to = BTreeSet::new();
        for (prefix, base) in [("crate::", String::new()), ("super::", parent(m))] {
            for (k, _) in code.match_indices(prefix) {
                if k > 0 && code[..k].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let path: String = code[k + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                let target = (1..=segs.len()).rev().find_map(|n| {
                    let cand = join(&base, &segs[..n].join("::"));
                    mods.contains_key(&cand).then_some(cand)
                });
                match target {
                    Some(t) if t != *m => {
                        to.insert(t);
                    }
                    None if prefix == "crate::" && !m.is_empty() => {
                        to.insert(String::new());
                    }
                    _ => {}
                }
            }
        }
        if m.is_empty() {
            // The root reaches a child by naming it (`cmd::run(…)`, `pub use cmd::X`).
            for child in mods.keys().filter(|c| !c.is_empty() && !c.contains("::")) {
                if code.contains(&format!("{child}::")) {
                    to.insert(child.clone());
                }
            }
        }
        graph.insert(m.clone(), to);
    }
    graph
}

fn parent(m: &str) -> String {
    m.rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

fn join(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}::{rest}"),
    }
}

/// The groups of modules (two or more) that import each other, per crate.
pub fn import_cycles(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut srcs: Vec<PathBuf> = rust_files(&root.join("crates"))
        .into_iter()
        .filter_map(|f| {
            let s = f.components().position(|c| c.as_os_str() == "src")?;
            Some(f.components().take(s + 1).collect())
        })
        .collect::<BTreeSet<PathBuf>>()
        .into_iter()
        .collect();
    srcs.push(root.join("xtask/src"));
    let mut cycles = Vec::new();
    for src in srcs {
        let graph = module_graph(&src);
        for group in strongly_connected(&graph) {
            cycles.push((src.display().to_string(), group));
        }
    }
    cycles
}

/// The strongly connected components of more than one node (Kosaraju's algorithm).
fn strongly_connected(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        v: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(v.to_string()) {
            return;
        }
        for w in g.get(v).into_iter().flatten() {
            visit(w, g, seen, out);
        }
        out.push(v.to_string());
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for v in g.keys() {
        visit(v, g, &mut seen, &mut order);
    }
    let mut rev: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (v, ws) in g {
        for w in ws {
            rev.entry(w.clone()).or_default().insert(v.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut groups = Vec::new();
    for v in order.iter().rev() {
        let mut comp = Vec::new();
        visit(v, &rev, &mut seen, &mut comp);
        if comp.len() > 1 {
            comp.sort();
            groups.push(comp);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        workspace_root()
    }

    #[test]
    fn the_checks_read_this_checkout() {
        assert!(
            root().join("crates/score-core/src/lib.rs").is_file(),
            "{}",
            root().display()
        );
    }

    #[test]
    fn no_function_outside_tests_is_longer_than_the_limit() {
        let long = long_functions(&root(), MAX_FN_LINES);
        assert!(
            long.is_empty(),
            "functions over {MAX_FN_LINES} lines: {long:?}"
        );
    }

    #[test]
    fn no_module_imports_a_module_that_imports_it() {
        let cycles = import_cycles(&root());
        assert!(cycles.is_empty(), "import cycles: {cycles:?}");
    }

    #[test]
    fn the_checks_see_what_they_look_for() {
        // A cycle through the root and one between siblings; a long function.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("crates/demo/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            src.join("lib.rs"),
            "mod a;\nmod b;\npub fn f() { a::g() }\n",
        )
        .unwrap();
        std::fs::write(src.join("a.rs"), "use crate::b::h;\npub fn g() { h() }\n").unwrap();
        let body = "    let x = '{';\n".repeat(85);
        std::fs::write(
            src.join("b.rs"),
            format!("use crate::a::g;\npub fn h() {{\n{body}}}\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("xtask/src")).unwrap();
        let cycles = import_cycles(dir.path());
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].1, vec!["a".to_string(), "b".to_string()]);
        let long = long_functions(dir.path(), MAX_FN_LINES);
        assert_eq!(long.len(), 1, "{long:?}");
        assert_eq!((long[0].0, long[0].2.as_str()), (87, "h"));
    }
}
