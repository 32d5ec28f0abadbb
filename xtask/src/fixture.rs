//! `cargo xtask fixture musicscore`: build the shipped MusicScore-layout corpus from real
//! engraved music.
//!
//! 1. A virtual environment gets the pinned `music21` and `verovio` from PyPI.
//! 2. `xtask/fixture/render_musicscore.py` renders a few dozen public-domain works of the
//!    music21 corpus to SVG pages (A4 or US Letter) and writes a manifest with the
//!    hand-written IMSLP-style metadata.
//! 3. Here, each SVG page is rasterised with `resvg` at the chosen dpi onto white, encoded
//!    as an RGB baseline JPEG, and written in two published layouts: a
//!    `MisicScore-400`-style folder (loose JPEGs per split, `metadata.json` keyed by file
//!    name) and a `MusicScore-14K`-style set of `{train,val,test}.tar.gz` archives
//!    (`metadata.json` as a list of per-PDF records).
//!
//! Archives are written with fixed mtimes, owners and modes, and gzip with no
//! timestamp, so a rerun with the same tools gives the same bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// The pinned Python packages.
pub const PINNED: [&str; 2] = ["music21==10.5.1", "verovio==6.4.1"];

/// Options of `cargo xtask fixture musicscore`.
pub struct FixtureOptions {
    /// Output folder (the shipped corpus lives in `data/musicscore`).
    pub out: PathBuf,
    /// The study corpus (`study_works.py`) instead of the shipped one.
    pub study: bool,
    /// Working folder (virtual environment, SVG pages).
    pub work: PathBuf,
    /// Rasterisation resolution; the dataset's pages are 200 dpi.
    pub dpi: f64,
    /// JPEG quality 1–100.
    pub quality: u8,
    /// Python interpreter used to create the virtual environment.
    pub python: String,
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn ensure_venv(opts: &FixtureOptions) -> Result<PathBuf> {
    let venv = opts.work.join("venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        fs::create_dir_all(&opts.work)?;
        run(Command::new(&opts.python).args(["-m", "venv"]).arg(&venv))?;
    }
    let have = Command::new(&py)
        .args([
            "-c",
            "import music21, verovio; print(music21.__version__, verovio.toolkit().getVersion())",
        ])
        .output();
    let ok = matches!(&have, Ok(o) if o.status.success()
        && String::from_utf8_lossy(&o.stdout).starts_with("10.5.1 6.4.1"));
    if !ok {
        eprintln!("installing {} into {}", PINNED.join(" "), venv.display());
        run(Command::new(&py)
            .args(["-m", "pip", "install", "-q"])
            .args(PINNED))?;
    }
    Ok(py)
}

fn rasterise(
    svg_path: &Path,
    size: (u32, u32),
    fontdb: &std::sync::Arc<resvg::usvg::fontdb::Database>,
) -> Result<Vec<u8>> {
    let svg = fs::read(svg_path).with_context(|| format!("reading {}", svg_path.display()))?;
    let opt = resvg::usvg::Options {
        fontdb: fontdb.clone(),
        ..Default::default()
    };
    let tree = resvg::usvg::Tree::from_data(&svg, &opt)
        .with_context(|| format!("parsing {}", svg_path.display()))?;
    let (w, h) = size;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).context("empty page size")?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    let ts = tree.size();
    let transform =
        resvg::tiny_skia::Transform::from_scale(w as f32 / ts.width(), h as f32 / ts.height());
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    // Premultiplied RGBA on opaque white: drop alpha.
    Ok(pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect())
}

fn encode_jpeg(rgb: &[u8], w: u32, h: u32, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .context("encoding JPEG")?;
    Ok(out)
}

fn tar_gz(path: &Path, dir_in_archive: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
    let tmp = path.with_extension("gz.tmp");
    let file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    builder.append_data(&mut dir, format!("{dir_in_archive}/"), std::io::empty())?;
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        builder.append_data(&mut h, format!("{dir_in_archive}/{name}"), bytes.as_slice())?;
    }
    builder.into_inner()?.finish()?.flush()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Render, rasterise and write the corpus.
pub fn musicscore(opts: &FixtureOptions) -> Result<()> {
    let manifest = render_scores(opts)?;

    let fontdb = system_fonts();

    let ms400 = opts.out.join("MisicScore-400");
    let ms14k = opts.out.join("MusicScore-14K");
    for d in [&ms400, &ms14k] {
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
    }
    let mut meta400 = Map::new();
    let mut meta14k = Vec::new();
    let mut archives: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let (mut pages, mut bytes) = (0usize, 0usize);
    let works = manifest["works"].as_array().context("manifest: works")?;
    for work in works {
        let id = work["id"].as_u64().context("manifest: id")?;
        let layout = work["layout"].as_str().context("manifest: layout")?;
        let split = work["split"].as_str().context("manifest: split")?;
        let mm = work["page_mm"].as_array().context("manifest: page_mm")?;
        let px = |v: &Value| (v.as_f64().unwrap_or(0.0) / 25.4 * opts.dpi).round() as u32;
        let size = (px(&mm[0]), px(&mm[1]));
        let meta = work["metadata"].clone();
        for (p, svg) in work["pages"]
            .as_array()
            .context("manifest: pages")?
            .iter()
            .enumerate()
        {
            let svg = PathBuf::from(svg.as_str().context("manifest: page path")?);
            let rgb = rasterise(&svg, size, &fontdb)?;
            let jpeg = encode_jpeg(&rgb, size.0, size.1, opts.quality)?;
            let name = format!("IMSLP{id}_{}.jpg", p + 1);
            pages += 1;
            bytes += jpeg.len();
            if layout == "400" {
                let dir = ms400.join(split);
                fs::create_dir_all(&dir)?;
                fs::write(dir.join(&name), &jpeg)?;
                meta400.insert(name.clone(), meta.clone());
            } else {
                archives
                    .entry(split.to_string())
                    .or_default()
                    .push((name.clone(), jpeg));
            }
            println!("{layout:>4} {split:<5} {name} {}x{}", size.0, size.1);
        }
        if layout != "400" {
            let mut rec = Map::new();
            rec.insert("id".into(), Value::String(format!("IMSLP{id}")));
            if let Value::Object(m) = meta {
                rec.extend(m);
            }
            meta14k.push(Value::Object(rec));
        }
    }
    write_layouts(&ms400, &ms14k, meta400, meta14k, &archives)?;
    println!(
        "{pages} pages, {:.2} MB of JPEG, written to {} (music21 {}, verovio {})",
        bytes as f64 / 1e6,
        opts.out.display(),
        manifest["music21"],
        manifest["verovio"]
    );
    Ok(())
}

/// The two layouts' metadata files and MusicScore-14K's split archives.
fn write_layouts(
    ms400: &Path,
    ms14k: &Path,
    meta400: Map<String, Value>,
    meta14k: Vec<Value>,
    archives: &BTreeMap<String, Vec<(String, Vec<u8>)>>,
) -> Result<()> {
    if !meta400.is_empty() {
        fs::create_dir_all(ms400)?;
        fs::write(
            ms400.join("metadata.json"),
            serde_json::to_string_pretty(&Value::Object(meta400))?,
        )?;
    }
    fs::create_dir_all(ms14k)?;
    fs::write(
        ms14k.join("metadata.json"),
        serde_json::to_string_pretty(&Value::Array(meta14k))?,
    )?;
    for (split, files) in archives {
        tar_gz(&ms14k.join(format!("{split}.tar.gz")), split, files)?;
    }
    Ok(())
}

/// Render the scores with the pinned music21 + verovio (into `<work>/render` afresh, or
/// `<work>/render-study`, which keeps finished works) and read the manifest.
fn render_scores(opts: &FixtureOptions) -> Result<Value> {
    let py = ensure_venv(opts)?;
    // The study corpus keeps finished works across interrupted runs (each has its
    // work.json); the shipped one is always rendered afresh.
    let render = opts
        .work
        .join(if opts.study { "render-study" } else { "render" });
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixture");
    let stamp = render.join("scripts.sha256");
    let version = scripts_sha256(&scripts)?;
    let kept = opts.study && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == version);
    if render.exists() && !kept {
        if opts.study {
            eprintln!(
                "{}: rendered by other fixture scripts; rendering afresh",
                render.display()
            );
        }
        fs::remove_dir_all(&render)?;
    }
    fs::create_dir_all(&render)?;
    score_core::fs::write_atomic(&stamp, version.as_bytes())?;
    let script = scripts.join("render_musicscore.py");
    let mut cmd = Command::new(&py);
    cmd.arg(&script).arg(&render);
    if opts.study {
        cmd.arg("--study");
    }
    run(&mut cmd)?;
    let manifest: Value = serde_json::from_str(&fs::read_to_string(render.join("manifest.json"))?)?;
    Ok(manifest)
}

/// The SHA-256 of the fixture's Python scripts (name and contents, in name order): the
/// study render keeps finished works only while these are unchanged.
fn scripts_sha256(dir: &Path) -> Result<String> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    names.sort();
    let mut all = Vec::new();
    for p in names {
        all.extend_from_slice(p.file_name().unwrap_or_default().as_encoded_bytes());
        all.push(0);
        all.extend(fs::read(&p).with_context(|| format!("reading {}", p.display()))?);
        all.push(0);
    }
    Ok(crate::pypi::sha256(&all))
}

/// The system fonts for rasterising the SVG pages (warned about when there are none).
fn system_fonts() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    let mut fontdb = resvg::usvg::fontdb::Database::new();
    fontdb.load_system_fonts();
    if fontdb.is_empty() {
        eprintln!("warning: no system fonts found; titles and text will be missing");
    }
    std::sync::Arc::new(fontdb)
}
