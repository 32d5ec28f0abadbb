//! Export to the Hugging Face `imagefolder` layout, and contact sheets.
//!
//! `imagefolder`: `OUT/<split>/<file>` plus `OUT/<split>/metadata.jsonl`, one JSON object
//! per line with `file_name` and `text` (the prompt) and the tidy fields as extra
//! columns; `datasets.load_dataset("imagefolder", data_dir=OUT)` reads it. Pages are
//! copied byte for byte, or decoded, resized and written as PNG when a resize is given.
//! The export is written into a temporary sibling folder and renamed into place at the
//! end, so an interrupted export never leaves a half-written dataset behind.
//!
//! The `text` column is always the full prompt: caption dropout (the captioner's
//! `dropout`) is left to training, which draws it afresh every epoch; frozen into
//! `metadata.jsonl` it would drop the same captions in every epoch. Pages outside the
//! published splits go to `train/`, a split name Hugging Face recognises (its split
//! keywords are train, val/validation/dev and test/eval; `unsplit` is not one).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::corpus::{Corpus, Split};
use crate::dataset::{ItemOptions, page_items};
use crate::error::{MusicScoreError, Result, io};
use crate::image::{ColorMode, DecodeOptions, Raster, Resize, decode_resized};
use crate::prompt::Captioner;

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Images per split.
    pub images: BTreeMap<String, usize>,
    /// Bytes written.
    pub bytes: u64,
    /// Files whose name another page of the same split had already taken (the same
    /// base name in two archive folders), written as `<stem>__<k>.<ext>`: (split, the
    /// page's name, the name written).
    pub renamed: Vec<(String, String, String)>,
}

/// A name not yet used in `split`'s folder: `name` itself, else `<stem>__<k>.<ext>`
/// with the smallest k ≥ 2 that is free (recorded in `renamed`).
fn unique_name(
    used: &mut std::collections::BTreeSet<(String, String)>,
    renamed: &mut Vec<(String, String, String)>,
    split: &str,
    name: &str,
) -> String {
    let mut chosen = name.to_string();
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let mut k = 2;
    while used.contains(&(split.to_string(), chosen.clone())) {
        chosen = match ext.is_empty() {
            true => format!("{stem}__{k}"),
            false => format!("{stem}__{k}.{ext}"),
        };
        k += 1;
    }
    if chosen != name {
        renamed.push((split.to_string(), name.to_string(), chosen.clone()));
    }
    used.insert((split.to_string(), chosen.clone()));
    chosen
}

/// The folder a split is exported to: its own name, and `train` for unsplit pages.
pub fn export_split_name(split: Split) -> &'static str {
    match split {
        Split::Unsplit => Split::Train.name(),
        s => s.name(),
    }
}

/// Export pages `assign = [(page, split)]` to `out` in the imagefolder layout. `resize`
/// re-encodes as PNG (tiles give one image per tile); `None` copies the files. Refuses
/// to replace a non-empty `out` unless `overwrite`.
pub fn export_imagefolder(
    corpus: &Corpus,
    assign: &[(usize, Split)],
    out: &Path,
    captioner: &Captioner,
    resize: Option<(Resize, DecodeOptions)>,
    overwrite: bool,
) -> Result<ExportSummary> {
    let tmp = prepare_out(out, overwrite)?;
    let split_of: std::collections::HashMap<usize, &str> = assign
        .iter()
        .map(|&(i, s)| (i, export_split_name(s)))
        .collect();
    let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // The full prompt in `text`: dropout is training's, drawn per epoch.
    let captioner = &Captioner {
        dropout: 0.0,
        ..captioner.clone()
    };
    let mut images: BTreeMap<String, usize> = BTreeMap::new();
    let (mut used, mut renamed) = (std::collections::BTreeSet::new(), Vec::new());
    let mut bytes_out = 0u64;
    let pages: Vec<usize> = assign.iter().map(|a| a.0).collect();
    let item_opts = resize.map(|(r, d)| ItemOptions {
        decode: d,
        resize: r,
        captioner: captioner.clone(),
    });
    let result = corpus.for_each_bytes(&pages, |i, bytes| {
        let split = split_of[&i];
        let dir = tmp.join(split);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let page = &corpus.pages[i];
        let f = corpus.fields(i);
        let text = captioner.caption(&f, Some(&page.name), i as u64, 0);
        let files = page_files(corpus, i, bytes, text, item_opts.as_ref())?;
        for (name, data, text) in files {
            let name = unique_name(&mut used, &mut renamed, split, &name);
            let path = dir.join(&name);
            std::fs::write(&path, &data).map_err(io(&path))?;
            bytes_out += data.len() as u64;
            *images.entry(split.to_string()).or_default() += 1;
            let line = metadata_line(&name, &text, page, &f);
            lines.entry(split).or_default().push(line);
        }
        Ok(())
    });
    let finish = result.and_then(|_| finish_export(&tmp, out, &lines));
    if let Err(e) = finish {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(ExportSummary {
        out: out.to_path_buf(),
        images,
        bytes: bytes_out,
        renamed,
    })
}

/// Refuse a non-empty `out` without `overwrite`; create its parent and return a fresh
/// temporary folder beside it, renamed over `out` at the end.
fn prepare_out(out: &Path, overwrite: bool) -> Result<std::path::PathBuf> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty && !overwrite {
            return Err(MusicScoreError::Invalid(format!(
                "{}: exists and is not empty (pass --overwrite to replace it)",
                out.display()
            )));
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(
        ".{}.partial-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    Ok(tmp)
}

/// The files one page becomes: the page as it is, or its resized image (or tiles) as
/// PNG, each with its caption.
fn page_files(
    corpus: &Corpus,
    i: usize,
    bytes: Vec<u8>,
    text: String,
    item_opts: Option<&ItemOptions>,
) -> Result<Vec<(String, Vec<u8>, String)>> {
    let page = &corpus.pages[i];
    let mut files: Vec<(String, Vec<u8>, String)> = Vec::new();
    match item_opts {
        None => files.push((page.file_name.clone(), bytes, text)),
        Some(o) => {
            let stem = page
                .file_name
                .rsplit_once('.')
                .map_or(page.file_name.as_str(), |s| s.0);
            let rasters: Vec<(Raster, String)> = match o.resize {
                Resize::Tiles { .. } => page_items(corpus, i, &bytes, o, i as u64 * 1000, 0)?
                    .into_iter()
                    .map(|it| (item_raster(&it.pixels, it.shape), it.prompt))
                    .collect(),
                r => vec![(
                    decode_resized(&bytes, &o.decode, &r, &corpus.source_name(i))?,
                    text,
                )],
            };
            let tiled = matches!(o.resize, Resize::Tiles { .. });
            for (k, (r, t)) in rasters.into_iter().enumerate() {
                let name = if tiled {
                    format!("{stem}_t{k}.png")
                } else {
                    format!("{stem}.png")
                };
                files.push((name, encode_png(&r)?, t));
            }
        }
    }
    Ok(files)
}

/// A `metadata.jsonl` line: the file, its caption and the page's fields.
fn metadata_line(
    name: &str,
    text: &str,
    page: &crate::corpus::Page,
    f: &crate::metadata::Fields,
) -> String {
    let line = json!({
        "file_name": name,
        "text": text,
        "imslp_id": page.name.file_id,
        "page": page.name.page,
        "title": f.title,
        "composer": f.composer,
        "key": f.key,
        "instrumentation": f.get("instrumentation"),
        "style": f.style,
        "period": f.period,
        "year": f.year,
        "genres": f.get("genres"),
    });
    line.to_string()
}

/// Write each split's `metadata.jsonl` into `tmp` and rename it over `out`.
fn finish_export(tmp: &Path, out: &Path, lines: &BTreeMap<&str, Vec<String>>) -> Result<()> {
    for (split, ls) in lines {
        let p = tmp.join(split).join("metadata.jsonl");
        let mut fh = std::fs::File::create(&p).map_err(io(&p))?;
        for l in ls {
            writeln!(fh, "{l}").map_err(io(&p))?;
        }
    }
    std::fs::create_dir_all(tmp).map_err(io(tmp))?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(tmp, out).map_err(io(out))
}

fn item_raster(pixels: &[f32], shape: [usize; 3]) -> Raster {
    let [c, h, w] = shape;
    let mut data = vec![0u8; c * h * w];
    for ch in 0..c {
        for i in 0..h * w {
            data[i * c + ch] = ((pixels[ch * h * w + i] + 1.0) * 127.5)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    Raster {
        width: w,
        height: h,
        channels: c,
        data,
    }
}

/// PNG bytes of a raster (8-bit gray or RGB).
pub fn encode_png(r: &Raster) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, r.width as u32, r.height as u32);
        enc.set_color(if r.channels == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| MusicScoreError::Invalid(format!("PNG: {e}")))?;
        w.write_image_data(&r.data)
            .map_err(|e| MusicScoreError::Invalid(format!("PNG: {e}")))?;
    }
    Ok(out)
}

/// Paste `img` at `(x, y)` inside a one-pixel grey frame.
fn paste_framed(sheet: &mut Raster, img: &Raster, x: usize, y: usize) {
    let mut frame = Raster::white(img.width + 2, img.height + 2, sheet.channels);
    frame.data.fill(160);
    sheet.paste(&frame, x as isize - 1, y as isize - 1);
    sheet.paste(img, x as isize, y as isize);
}

/// Write `r` as a PNG file atomically (a temporary beside it, then a rename), creating
/// the folder: a full disk leaves the old file, never a truncated one.
fn write_png(r: &Raster, out: &Path) -> Result<()> {
    score_core::fs::write_atomic(out, &encode_png(r)?).map_err(|e| match e {
        score_core::ScoreError::Io { path, source } => io(path)(source),
        other => io(out)(std::io::Error::other(other.to_string())),
    })
}

/// Draw `text` in the 8×8 bitmap font at `(x, y)`, `scale` pixels per font pixel,
/// wrapping at `max_w` pixels and stopping after `max_lines` lines. Returns the lines
/// used.
pub fn draw_text(
    img: &mut Raster,
    text: &str,
    x: usize,
    y: usize,
    max_w: usize,
    max_lines: usize,
    scale: usize,
) -> usize {
    use font8x8::UnicodeFonts;
    let cw = 8 * scale;
    let per_line = (max_w / cw).max(1);
    // Greedy word wrap.
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().map(|l| l.chars().count()).unwrap_or(0);
        let wl = word.chars().count();
        if cur > 0 && cur + 1 + wl > per_line {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    let mut used = 0;
    for (li, line) in lines.iter().take(max_lines).enumerate() {
        used = li + 1;
        for (ci, ch) in line.chars().take(per_line).enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::LATIN_FONTS.get(ch))
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (gy, row) in glyph.iter().enumerate() {
                for gx in 0..8 {
                    if row >> gx & 1 == 1 {
                        for sy in 0..scale {
                            for sx in 0..scale {
                                let px = x + ci * cw + gx * scale + sx;
                                let py = y + li * 10 * scale + gy * scale + sy;
                                if px < img.width && py < img.height {
                                    let i = (py * img.width + px) * img.channels;
                                    img.data[i..i + img.channels].fill(0);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    used
}

/// A sheet of `w`×`h` pixels of `channels` bytes must fit in memory and in a PNG
/// (at most 2³¹ pixels a side); computed in f64 so that no size overflows first.
fn ensure_sheet_fits(flags: &str, w: f64, h: f64, channels: usize) -> Result<()> {
    let side = (1u64 << 31) as f64;
    if !(w < side && h < side) {
        return Err(score_core::ScoreError::TooLarge {
            what: flags.to_string(),
            detail: format!("a sheet of {w:.0}×{h:.0} pixels: a PNG side is at most 2^31"),
        }
        .into());
    }
    score_core::limits::ensure_fits(
        flags,
        (w * h) as u128 * channels as u128,
        "use a smaller thumbnail or tile size, or fewer columns",
    )?;
    Ok(())
}

/// A contact sheet: pages fit-and-padded to `thumb` pixels wide (A4 proportions), in
/// `cols` columns, each with its file name and prompt printed below. Written as PNG.
pub fn contact_sheet(
    corpus: &Corpus,
    pages: &[usize],
    captioner: &Captioner,
    cols: usize,
    thumb: usize,
    out: &Path,
) -> Result<usize> {
    let cols = cols.max(1);
    let caption_lines = 5;
    let cap_h = 10 * caption_lines + 14;
    let th = thumb as f64 * 297.0 / 210.0;
    let rows = pages.len().div_ceil(cols).max(1);
    let (cw, chh) = (thumb as f64 + 16.0, th + cap_h as f64 + 16.0);
    ensure_sheet_fits("--thumb/--cols", cols as f64 * cw, rows as f64 * chh, 3)?;
    let (tw, th) = (thumb, th.round() as usize);
    let (cell_w, cell_h) = (tw + 16, th + cap_h + 16);
    let mut sheet = Raster::white(cols * cell_w, rows * cell_h, 3);
    let opts = DecodeOptions {
        color: ColorMode::Rgb,
        ..Default::default()
    };
    let pos: std::collections::HashMap<usize, usize> =
        pages.iter().enumerate().map(|(k, &p)| (p, k)).collect();
    let mut drawn = 0;
    corpus.for_each_bytes(pages, |i, bytes| {
        let k = pos[&i];
        let (cx, cy) = ((k % cols) * cell_w + 8, (k / cols) * cell_h + 8);
        match decode_resized(
            &bytes,
            &opts,
            &Resize::FitPad {
                width: tw,
                height: th,
            },
            &corpus.source_name(i),
        ) {
            Ok(img) => {
                paste_framed(&mut sheet, &img, cx, cy);
            }
            Err(e) => {
                draw_text(
                    &mut sheet,
                    &format!("unreadable: {e}"),
                    cx,
                    cy + th / 2,
                    tw,
                    4,
                    1,
                );
            }
        }
        let p = &corpus.pages[i];
        let f = corpus.fields(i);
        let text = captioner.caption(&f, Some(&p.name), i as u64, 0);
        draw_text(&mut sheet, &p.file_name, cx, cy + th + 4, tw, 1, 1);
        draw_text(&mut sheet, &text, cx, cy + th + 14, tw, caption_lines, 1);
        drawn += 1;
        Ok(())
    })?;
    write_png(&sheet, out)?;
    Ok(drawn)
}

/// A sheet of staff-system tiles ([`crate::image::decode_tiles`]) of `pages`: the first
/// `n` tiles in `cols` columns, each labelled with its file and tile number. Written as
/// PNG; returns the number of tiles drawn.
#[allow(clippy::too_many_arguments)]
pub fn tile_sheet(
    corpus: &Corpus,
    pages: &[usize],
    size: usize,
    scale: f64,
    n: usize,
    cols: usize,
    out: &Path,
) -> Result<usize> {
    // One row of the sheet first: a tile size that cannot fit fails before decoding.
    let (fw, fh) = (size as f64 + 12.0, size as f64 + 24.0);
    ensure_sheet_fits("--tiles/--cols", cols.max(1) as f64 * fw, fh, 1)?;
    let opts = DecodeOptions::default();
    let mut tiles: Vec<(usize, String, Raster)> = Vec::new();
    corpus.for_each_bytes(pages, |i, bytes| {
        if tiles.len() < n {
            let stem = corpus.pages[i].name.to_string();
            for (k, t) in
                crate::image::decode_tiles(&bytes, &opts, size, scale, &corpus.source_name(i))?
                    .into_iter()
                    .enumerate()
            {
                tiles.push((i, format!("{stem} t{k}"), t));
            }
        }
        Ok(())
    })?;
    // for_each_bytes visits archives in storage order: restore page order.
    tiles.sort_by_key(|t| t.0);
    tiles.truncate(n);
    let cols = cols.max(1);
    let rows = tiles.len().div_ceil(cols).max(1);
    ensure_sheet_fits("--tiles/--cols", cols as f64 * fw, rows as f64 * fh, 1)?;
    let (cw, ch) = (size + 12, size + 24);
    let mut sheet = Raster::white(cols * cw, rows * ch, 1);
    for (k, (_, label, t)) in tiles.iter().enumerate() {
        let (x, y) = ((k % cols) * cw + 6, (k / cols) * ch + 4);
        paste_framed(&mut sheet, t, x, y);
        draw_text(&mut sheet, label, x, y + size + 5, size, 1, 1);
    }
    write_png(&sheet, out)?;
    Ok(tiles.len())
}
