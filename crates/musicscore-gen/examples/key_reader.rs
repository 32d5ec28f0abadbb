//! How often the key-signature reader agrees with the key a page's metadata names, on
//! every whole system of a corpus at the corpus's scale (0.5 × the page file): the
//! reader's ceiling for text-to-score's key adherence.
//!
//! ```text
//! cargo run --release -p musicscore-gen --example key_reader -- ~/.cache/scorelab/musicscore-study
//! ```
//! prints one line per system (file, system, staves, key's signature, reading) and a
//! summary per instrumentation; `--summary` prints the summary only; `--dump DIR` also
//! writes each system whose reading disagrees as a PGM (luma) in DIR, named by page,
//! system, key and reading.

use std::collections::BTreeMap;

use musicscore_data::corpus::{Corpus, OpenOptions};
use musicscore_data::image::detect_systems;
use musicscore_data::notation::{key_fifths, read_key_signature};
use musicscore_gen::textscore::decode_scaled;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let summary = args.iter().any(|a| a == "--summary");
    let dump = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let root = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--dump"))
        .map(|(_, a)| a)
        .ok_or("usage: key_reader ROOT [--summary] [--dump DIR]")?;
    // (systems, agreeing, read as none) per instrumentation.
    let mut per: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for layout in ["MusicScore-14K", "MisicScore-400", ""] {
        let dir = std::path::Path::new(root).join(layout);
        if !dir.join("metadata.json").exists() {
            continue;
        }
        let c = Corpus::open(&dir, &OpenOptions::default())?;
        for p in 0..c.pages.len() {
            let f = c.fields(p);
            let Some(want) = f.key.as_deref().and_then(key_fifths) else {
                continue;
            };
            let page = decode_scaled(&c.read(p)?, 0.5, &c.source_name(p))?;
            for (k, s) in detect_systems(&page).iter().enumerate() {
                let img = page.crop(0, s.band.0, page.width, s.band.1 - s.band.0);
                let got = read_key_signature(&img).map(|r| r.fifths);
                let e = per.entry(f.instrumentation.join(", ")).or_default();
                e.0 += 1;
                e.1 += (got == Some(want)) as usize;
                e.2 += got.is_none() as usize;
                if let (Some(dir), false) = (&dump, got == Some(want)) {
                    let name = c.source_name(p);
                    let stem = name.rsplit('/').next().unwrap_or("page");
                    let instr = f.instrumentation.join("+").replace(' ', "_");
                    let file = format!("{instr}-{stem}-s{k}-key{want}-read{got:?}.pgm");
                    write_pgm(&dir.join(file), &img)?;
                }
                if !summary {
                    println!(
                        "{} system {k}: {} staves, key {want}, read {got:?}",
                        c.source_name(p),
                        s.staves
                    );
                }
            }
        }
        break;
    }
    let (mut n, mut ok) = (0, 0);
    for (instr, (a, b, none)) in &per {
        println!(
            "{instr}: {b}/{a} agree ({:.3}), {none} unread",
            *b as f64 / (*a).max(1) as f64
        );
        n += a;
        ok += b;
    }
    println!("all: {ok}/{n} agree ({:.3})", ok as f64 / n.max(1) as f64);
    Ok(())
}

/// `img`'s luma as a binary PGM.
fn write_pgm(path: &std::path::Path, img: &musicscore_data::image::Raster) -> std::io::Result<()> {
    let mut out = format!("P5\n{} {}\n255\n", img.width, img.height).into_bytes();
    out.extend((0..img.width * img.height).map(|i| img.luma(i)));
    std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")))?;
    std::fs::write(path, out)
}
