//! A researcher's own images as an [`ImageDataset`]: a folder of PNG and JPEG files
//! (found recursively), or an image array in a `.npy` file.
//!
//! Labels of a folder come, in this order, from a `metadata.jsonl` or `metadata.csv`
//! at its root with a `file_name` column (paths relative to the root) and a `label`
//! column (Hugging Face's `imagefolder`), or from the names of the sub-folders when
//! every image lies exactly one folder below the root (torchvision's `ImageFolder`:
//! classes in sorted order). Otherwise the images are unlabelled: one class, label 0.
//!
//! Every image is decoded once when the set is opened, and the error names the file:
//! undecodable files, a size different from the first image's (naming both files), a
//! label row naming a missing image, an image without a label row. Grayscale images
//! stay one channel; RGB and RGBA become RGB (alpha dropped), and a folder mixing
//! grayscale and colour is read as RGB. Pixels are scaled from [0, 255] to [−1, 1].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use score_core::error::{Result, ScoreError};

use crate::image::read_png_u8;
use crate::images::ImageDataset;

/// The extensions read from a folder (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Every image file under `root`, recursively, in sorted path order. Hidden entries
/// (names starting with `.`) are skipped.
pub fn list_images(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| ScoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| ScoreError::io(&dir, e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| ScoreError::io(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && is_image(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decode a PNG or JPEG file as `(channels, height, width, planar bytes [c, h, w])`,
/// with 1 (grayscale) or 3 (colour) channels.
pub fn read_image_u8(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("png") {
        return read_png_u8(path);
    }
    read_jpeg_u8(path)
}

fn read_jpeg_u8(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bad = |d: String| ScoreError::format(path, "JPEG", d);
    let bytes = score_core::fs::read_file(path)?;
    let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(&bytes));
    dec.read_info().map_err(|e| bad(e.to_string()))?;
    let info = dec.info().ok_or_else(|| bad("no frame header".into()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    score_core::limits::ensure_image_size(&path.display().to_string(), w as u64, h as u64)?;
    let c = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => {
            return Err(bad(format!(
                "pixel format {other:?} (8-bit gray or RGB only)"
            )));
        }
    };
    // The decoder may panic on a crafted file: that is an error naming it, not a crash.
    let pixels = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dec.decode()))
        .map_err(|_| bad("the decoder panicked on this file".into()))?
        .map_err(|e| bad(e.to_string()))?;
    if pixels.len() != c * h * w {
        return Err(bad(format!("{} bytes for {c}×{h}×{w}", pixels.len())));
    }
    let mut planar = vec![0u8; pixels.len()];
    for (i, px) in pixels.chunks_exact(c).enumerate() {
        for (k, v) in px.iter().enumerate() {
            planar[k * h * w + i] = *v;
        }
    }
    Ok((c, h, w, planar))
}

/// The labels of `files` under `root` and the class names, or `None` when the folder
/// has no labels (see the module documentation for where labels come from).
pub fn folder_labels(root: &Path, files: &[PathBuf]) -> Result<Option<(Vec<usize>, Vec<String>)>> {
    for name in ["metadata.jsonl", "metadata.csv"] {
        let path = root.join(name);
        if path.is_file() {
            let rows = read_metadata(&path)?;
            return labels_from_rows(root, &path, files, rows).map(Some);
        }
    }
    Ok(labels_from_folders(root, files))
}

/// torchvision's `ImageFolder`: every image exactly one folder below the root.
fn labels_from_folders(root: &Path, files: &[PathBuf]) -> Option<(Vec<usize>, Vec<String>)> {
    let classes: Vec<String> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root).ok()?;
            let mut parts = rel.components();
            let class = parts.next()?.as_os_str().to_string_lossy().into_owned();
            (parts.count() == 1).then_some(class)
        })
        .collect::<Option<_>>()?;
    let mut names: Vec<String> = classes.clone();
    names.sort();
    names.dedup();
    let labels = classes
        .iter()
        .map(|c| names.binary_search(c).unwrap_or(0))
        .collect();
    Some((labels, names))
}

/// `(file_name, label)` rows of a `metadata.jsonl` (one JSON object per line) or a
/// `metadata.csv` (a header line, comma-separated, no quoting).
fn read_metadata(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| ScoreError::io(path, e))?;
    let bad =
        |line: usize, d: String| ScoreError::format(path, "metadata", format!("line {line}: {d}"));
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<String> = if jsonl {
        Vec::new()
    } else {
        let (_, h) = lines
            .next()
            .ok_or_else(|| bad(1, "no header line".into()))?;
        h.split(',').map(|s| s.trim().to_string()).collect()
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let mut rows = Vec::new();
    for (i, line) in lines {
        let (file, label) = if jsonl {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(i + 1, e.to_string()))?;
            let text = |k: &str| match &v[k] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            (text("file_name"), text("label"))
        } else {
            if line.contains('"') {
                return Err(bad(
                    i + 1,
                    "quoted fields are not read; use metadata.jsonl".into(),
                ));
            }
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let cell = |k: &str| col(k).and_then(|c| cells.get(c)).map(|s| s.to_string());
            (cell("file_name"), cell("label"))
        };
        match (file, label) {
            (Some(f), Some(l)) => rows.push((f, l)),
            _ => return Err(bad(i + 1, "needs a file_name and a label".into())),
        }
    }
    Ok(rows)
}

/// Labels from metadata rows: every row names an image of the folder, every image has
/// a row. Class names are the distinct labels, numeric ones in numeric order.
fn labels_from_rows(
    root: &Path,
    meta: &Path,
    files: &[PathBuf],
    rows: Vec<(String, String)>,
) -> Result<(Vec<usize>, Vec<String>)> {
    let bad = |d: String| ScoreError::format(meta, "metadata", d);
    let mut by_file: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (file, label) in rows {
        let path = root.join(&file);
        if !files.contains(&path) {
            return Err(bad(format!(
                "file_name '{file}' is not an image of {}",
                root.display()
            )));
        }
        by_file.insert(path, label);
    }
    let mut names: Vec<String> = by_file.values().cloned().collect();
    names.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    });
    names.dedup();
    let labels = files
        .iter()
        .map(|f| {
            let l = by_file
                .get(f)
                .ok_or_else(|| bad(format!("no row names {}", f.display())))?;
            Ok(names.iter().position(|n| n == l).unwrap_or(0))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((labels, names))
}

impl ImageDataset {
    /// A folder of PNG/JPEG images (see the module documentation).
    pub fn from_folder(root: &Path) -> Result<Self> {
        Self::from_folder_at(root, None)
    }

    /// A folder of PNG/JPEG images, each resized to `resolution` × `resolution` (shorter
    /// side scaled, then centre crop: [`resize_center_crop`]) when given, held in
    /// memory (after a check that they fit; [`StreamedFolder`] reads image by image).
    pub fn from_folder_at(root: &Path, resolution: Option<usize>) -> Result<Self> {
        if let Some(n) = resolution {
            let files = list_images(root)?.len();
            score_core::limits::ensure_values_fit(
                "--resolution",
                files as u128,
                (n as u128).saturating_mul(n as u128).saturating_mul(3 * 8),
                "use a smaller --resolution",
            )?;
        }
        let folder = StreamedFolder::open(root, resolution)?;
        let [_, h, w] = folder.image_shape;
        score_core::limits::ensure_values_fit(
            "image folder",
            folder.len() as u128,
            (3 * h * w * 8) as u128,
            "use fewer or smaller images (or --resolution)",
        )?;
        let mut pixels = Vec::with_capacity(folder.len() * folder.image_len());
        for i in 0..folder.len() {
            pixels.extend(folder.image(i)?);
        }
        Ok(Self {
            pixels,
            labels: folder.labels,
            image_shape: folder.image_shape,
            num_classes: folder.num_classes,
            source: folder.source,
        })
    }
}

/// A folder of PNG/JPEG images read one image at a time. Opening it decodes every file
/// once (so an unreadable file or a size that differs is an error naming it before any
/// work starts) and fixes the common shape (3 channels if any image is colour); then
/// [`StreamedFolder::image`] decodes on demand. Memory holds a path and a label per
/// image, not the pixels, so it does not grow with the images' size.
#[derive(Debug, Clone)]
pub struct StreamedFolder {
    files: Vec<PathBuf>,
    resolution: Option<usize>,
    /// Labels, one per image (0 for all when the folder has none).
    pub labels: Vec<usize>,
    /// Number of classes (1 when unlabelled).
    pub num_classes: usize,
    /// `[c, h, w]` of every image as read.
    pub image_shape: [usize; 3],
    /// Where the images come from, and their count and shape.
    pub source: String,
}

impl StreamedFolder {
    /// Open `root` (see the type's documentation), resizing each image to
    /// `resolution` × `resolution` when given.
    pub fn open(root: &Path, resolution: Option<usize>) -> Result<Self> {
        if resolution == Some(0) {
            return Err(ScoreError::invalid("--resolution", "must be at least 1"));
        }
        if let Some(n) = resolution {
            // One resized image (and its source) must fit.
            score_core::limits::ensure_values_fit(
                "--resolution",
                2,
                (n as u128).saturating_mul(n as u128).saturating_mul(3 * 8),
                "use a smaller --resolution",
            )?;
        }
        let files = list_images(root)?;
        if files.is_empty() {
            return Err(ScoreError::invalid(
                "image folder",
                format!(
                    "{}: no image files ({}) in it or below it",
                    root.display(),
                    IMAGE_EXTENSIONS.join(", ")
                ),
            ));
        }
        let (labels, num_classes) = match folder_labels(root, &files)? {
            Some((l, names)) => (l, names.len()),
            None => (vec![0; files.len()], 1),
        };
        let [c, h, w] = check_all(&files, resolution)?;
        Ok(Self {
            source: format!("{} ({} images, {c}×{h}×{w})", root.display(), files.len()),
            files,
            resolution,
            labels,
            num_classes,
            image_shape: [c, h, w],
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Values per image (c·h·w).
    pub fn image_len(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// Image `i`, `[c, h, w]` in [−1, 1], exactly as [`ImageDataset::from_folder_at`]
    /// holds it. A file changed since [`StreamedFolder::open`] to another size is an
    /// error naming it.
    pub fn image(&self, i: usize) -> Result<Vec<f32>> {
        let f = &self.files[i];
        let (fc, fh, fw, v) = read_one(f, self.resolution)?;
        let [c, h, w] = self.image_shape;
        if (fh, fw) != (h, w) || fc > c {
            return Err(ScoreError::Shape {
                what: format!("image {}", f.display()),
                expected: format!("{c}×{h}×{w}, as when the folder was opened"),
                got: format!("{fc}×{fh}×{fw} (the file changed)"),
            });
        }
        Ok(expand_channels(&v, fc, c)
            .into_iter()
            .map(crate::images::byte_to_signed)
            .collect())
    }
}

/// One file decoded to `(channels, height, width, planar values in [0, 255])`, resized
/// to `resolution` when given.
fn read_one(f: &Path, resolution: Option<usize>) -> Result<(usize, usize, usize, Vec<f32>)> {
    let (c, h, w, p) = read_image_u8(f)?;
    let v: Vec<f32> = p.iter().map(|&b| b as f32).collect();
    Ok(match resolution {
        Some(n) => (c, n, n, resize_center_crop(&v, [c, h, w], n)),
        None => (c, h, w, v),
    })
}

/// Decode every file once, checking that all have the first one's size; returns the
/// common shape (3 channels if any image is colour).
fn check_all(files: &[PathBuf], resolution: Option<usize>) -> Result<[usize; 3]> {
    let (mut c, h, w, _) = read_one(&files[0], resolution)?;
    for f in &files[1..] {
        let (fc, fh, fw, _) = read_one(f, resolution)?;
        if (fh, fw) != (h, w) {
            return Err(ScoreError::Shape {
                what: format!("image {}", f.display()),
                expected: format!("{h}×{w} as {}", files[0].display()),
                got: format!(
                    "{fh}×{fw} (all images of a set must have one size; --resolution N resizes them)"
                ),
            });
        }
        c = c.max(fc);
    }
    Ok([c, h, w])
}

/// Box-filter weights from `inp` samples to `out`: output o averages the input over
/// [o·s, (o + 1)·s), s = inp/out, each input pixel weighted by its overlap.
fn box_weights(inp: usize, out: usize) -> Vec<Vec<(usize, f32)>> {
    let s = inp as f64 / out as f64;
    (0..out)
        .map(|o| {
            let (lo, hi) = (o as f64 * s, (o + 1) as f64 * s);
            (lo.floor() as usize..(hi.ceil() as usize).min(inp))
                .map(|i| {
                    let overlap = hi.min(i as f64 + 1.0) - lo.max(i as f64);
                    (i, (overlap / s) as f32)
                })
                .filter(|&(_, wgt)| wgt > 0.0)
                .collect()
        })
        .collect()
}

/// An image `[c, h, w]` scaled (box filter) so that its shorter side is `n`, then
/// cropped to the centre `n × n`: the `--resolution` of `train`, documented in
/// `docs/own-data.md`. Downscaling averages the covered pixels (as OpenCV's
/// `INTER_AREA`); upscaling repeats them (nearest neighbour).
pub fn resize_center_crop(v: &[f32], [c, h, w]: [usize; 3], n: usize) -> Vec<f32> {
    let short = h.min(w).max(1);
    let (sh, sw) = (
        (h * n).div_ceil(short).max(n),
        (w * n).div_ceil(short).max(n),
    );
    let (wy, wx) = (box_weights(h, sh), box_weights(w, sw));
    let (top, left) = ((sh - n) / 2, (sw - n) / 2);
    let mut out = Vec::with_capacity(c * n * n);
    for k in 0..c {
        let plane = &v[k * h * w..(k + 1) * h * w];
        for ry in &wy[top..top + n] {
            for rx in &wx[left..left + n] {
                let mut acc = 0.0f32;
                for &(y, a) in ry {
                    for &(x, b) in rx {
                        acc += a * b * plane[y * w + x];
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// A grayscale plane repeated to `to` channels (or the values as they are).
fn expand_channels(p: &[f32], from: usize, to: usize) -> Vec<f32> {
    if from == to {
        return p.to_vec();
    }
    p.iter()
        .copied()
        .cycle()
        .take(p.len() * to / from)
        .collect()
}

impl ImageDataset {
    /// Every image scaled so that its shorter side is `n`, then centre-cropped to
    /// `n × n` ([`resize_center_crop`]).
    pub fn with_resolution(&self, n: usize) -> Self {
        let [c, h, w] = self.image_shape;
        let pixels = self
            .pixels
            .chunks_exact((c * h * w).max(1))
            .flat_map(|img| resize_center_crop(img, [c, h, w], n))
            .collect();
        Self {
            pixels,
            labels: self.labels.clone(),
            image_shape: [c, n, n],
            num_classes: self.num_classes,
            source: format!("{} (resized to {n}×{n})", self.source),
        }
    }
}

/// How [`ImageDataset::from_npy`] read an array: its layout and value range.
fn array_layout(shape: &[usize], path: &Path) -> Result<([usize; 4], bool)> {
    match *shape {
        [n, h, w] if n > 0 => Ok(([n, 1, h, w], false)),
        // [n, c, h, w] (PyTorch's order) where both readings fit.
        [n, c, h, w] if n > 0 && (c == 1 || c == 3) => Ok(([n, c, h, w], false)),
        [n, h, w, c] if n > 0 && (c == 1 || c == 3) => Ok(([n, c, h, w], true)),
        _ => Err(ScoreError::format(
            path,
            "NPY",
            format!(
                "shape {shape:?}: an image array is [n, h, w], [n, c, h, w] or [n, h, w, c] with n ≥ 1 and c = 1 or 3"
            ),
        )),
    }
}

/// A map from an array's values to pixels in [−1, 1].
type ToSigned = fn(f64) -> f32;

/// The value range of an image array: values above 1 are bytes [0, 255], else
/// negative values mean [−1, 1], else [0, 1].
fn array_range(data: &[f64], path: &Path) -> Result<(&'static str, ToSigned)> {
    let lo = data.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (name, min, max, map): (_, _, _, ToSigned) = if hi > 1.0 {
        ("[0, 255]", 0.0, 255.0, |v| {
            crate::images::byte_to_signed(v as f32)
        })
    } else if lo < 0.0 {
        ("[-1, 1]", -1.0, 1.0, |v| v as f32)
    } else {
        ("[0, 1]", 0.0, 1.0, |v| v as f32 * 2.0 - 1.0)
    };
    if lo < min || hi > max {
        return Err(ScoreError::format(
            path,
            "NPY",
            format!("values from {lo} to {hi}: not images in [0, 255], [0, 1] or [-1, 1]"),
        ));
    }
    Ok((name, map))
}

impl ImageDataset {
    /// An image array read from `path` (`[n, h, w]`, `[n, c, h, w]` or `[n, h, w, c]`;
    /// uint8 or float in [0, 255], [0, 1] or [−1, 1]), unlabelled. The layout and range
    /// found are stated in `source`.
    pub fn from_npy(arr: crate::npy::NpyArray, path: &Path) -> Result<Self> {
        arr.require_finite(path)?;
        let ([n, c, h, w], nhwc) = array_layout(&arr.shape, path)?;
        let (range, map) = array_range(&arr.data, path)?;
        let at = |i: usize, k: usize, p: usize| match nhwc {
            true => arr.data[(i * h * w + p) * c + k],
            false => arr.data[(i * c + k) * h * w + p],
        };
        let mut pixels = Vec::with_capacity(arr.data.len());
        for i in 0..n {
            for k in 0..c {
                pixels.extend((0..h * w).map(|p| map(at(i, k, p))));
            }
        }
        let layout = if nhwc { "[n, h, w, c]" } else { "[n, c, h, w]" };
        Ok(Self {
            pixels,
            labels: vec![0; n],
            image_shape: [c, h, w],
            num_classes: 1,
            source: format!(
                "{} ({n} images, {c}×{h}×{w}, read as {layout} in {range})",
                path.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write a `w`×`h` PNG of `c` channels (1 gray, 3 RGB, 4 RGBA) filled with `v`.
    fn png(path: &Path, w: u32, h: u32, c: usize, v: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = std::fs::File::create(path).unwrap();
        let mut e = png::Encoder::new(f, w, h);
        e.set_color(match c {
            1 => png::ColorType::Grayscale,
            3 => png::ColorType::Rgb,
            _ => png::ColorType::Rgba,
        });
        e.set_depth(png::BitDepth::Eight);
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(&vec![v; w as usize * h as usize * c])
            .unwrap();
    }

    fn jpeg(path: &Path, w: u16, h: u16, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let px: Vec<u8> = (0..w as usize * h as usize).flat_map(|_| rgb).collect();
        let enc = jpeg_encoder::Encoder::new_file(path, 100).unwrap();
        enc.encode(&px, w, h, jpeg_encoder::ColorType::Rgb).unwrap();
    }

    #[test]
    fn a_class_folder_of_png_and_jpeg_reads_as_rgb_with_sorted_class_labels() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        png(&r.join("cat/a.png"), 4, 3, 1, 255); // gray, becomes RGB
        png(&r.join("cat/b.png"), 4, 3, 4, 0); // RGBA, alpha dropped
        jpeg(&r.join("ant/c.jpg"), 4, 3, [255, 255, 255]);
        let d = ImageDataset::from_folder(r).unwrap();
        assert_eq!((d.image_shape, d.num_classes), ([3, 3, 4], 2));
        // Sorted paths: ant/c.jpg, cat/a.png, cat/b.png; classes ant = 0, cat = 1.
        assert_eq!(d.labels, vec![0, 1, 1]);
        let n = 3 * 3 * 4;
        // JPEG white decodes to 255 up to quantisation (quality 100: within 1 step).
        assert!(
            d.pixels[..n]
                .iter()
                .all(|&v| (v - 1.0).abs() <= 1.0 / 127.5 + 1e-6)
        );
        assert!(d.pixels[n..2 * n].iter().all(|&v| v == 1.0));
        assert!(d.pixels[2 * n..].iter().all(|&v| v == -1.0));
    }

    #[test]
    fn metadata_labels_and_every_refusal_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        png(&r.join("x/1.png"), 2, 2, 1, 10);
        png(&r.join("y.png"), 2, 2, 1, 20);
        // Not all one folder deep: no folder labels; a metadata file gives them.
        assert_eq!(ImageDataset::from_folder(r).unwrap().num_classes, 1);
        std::fs::write(
            r.join("metadata.csv"),
            "file_name,label\nx/1.png,7\ny.png,3\n",
        )
        .unwrap();
        let d = ImageDataset::from_folder(r).unwrap();
        assert_eq!((d.labels.clone(), d.num_classes), (vec![1, 0], 2));
        std::fs::remove_file(r.join("metadata.csv")).unwrap();
        std::fs::write(
            r.join("metadata.jsonl"),
            "{\"file_name\": \"gone.png\", \"label\": 1}\n",
        )
        .unwrap();
        let e = ImageDataset::from_folder(r).unwrap_err().to_string();
        assert!(
            e.contains("metadata.jsonl") && e.contains("gone.png"),
            "{e}"
        );
        std::fs::write(
            r.join("metadata.jsonl"),
            "{\"file_name\": \"y.png\", \"label\": 1}\n",
        )
        .unwrap();
        let e = ImageDataset::from_folder(r).unwrap_err().to_string();
        assert!(e.contains("no row names") && e.contains("1.png"), "{e}");
        std::fs::remove_file(r.join("metadata.jsonl")).unwrap();
        png(&r.join("z.png"), 3, 2, 1, 0);
        let e = ImageDataset::from_folder(r).unwrap_err().to_string();
        assert!(
            e.contains("z.png") && e.contains("1.png") && e.contains("3"),
            "{e}"
        );
        std::fs::write(r.join("z.png"), b"not a png").unwrap();
        let e = ImageDataset::from_folder(r).unwrap_err().to_string();
        assert!(e.contains("z.png") && e.contains("PNG"), "{e}");
        let empty = r.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = ImageDataset::from_folder(&empty).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("no image files"), "{e}");
    }

    #[test]
    fn image_arrays_are_read_in_either_layout_and_any_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        // Two 2×2 RGB images, NHWC, bytes: pixel (i, p) has channel values k·100 + p.
        let data: Vec<f64> = (0..2)
            .flat_map(|_| (0..4).flat_map(|p| (0..3).map(move |k| (k * 100 + p) as f64)))
            .collect();
        let arr = crate::npy::NpyArray {
            shape: vec![2, 2, 2, 3],
            data: data.clone(),
        };
        let d = ImageDataset::from_npy(arr, &path).unwrap();
        assert_eq!(d.image_shape, [3, 2, 2]);
        let want: Vec<f32> = [0.0, 1.0, 2.0, 3.0, 100.0, 101.0, 102.0, 103.0]
            .iter()
            .map(|&v| crate::images::byte_to_signed(v))
            .collect();
        // Bit for bit what a PNG of these bytes reads to.
        assert_eq!(&d.pixels[..8], &want[..]);
        assert!(
            d.source.contains("[n, h, w, c] in [0, 255]"),
            "{}",
            d.source
        );
        let unit = crate::npy::NpyArray {
            shape: vec![1, 1, 1, 2],
            data: vec![0.0, 0.5],
        };
        let d = ImageDataset::from_npy(unit, &path).unwrap();
        assert_eq!(
            (d.pixels.clone(), d.image_shape),
            (vec![-1.0, 0.0], [1, 1, 2])
        );
        let bad = crate::npy::NpyArray {
            shape: vec![2, 5],
            data: vec![0.0; 10],
        };
        let e = ImageDataset::from_npy(bad, &path).unwrap_err().to_string();
        assert!(e.contains("a.npy") && e.contains("[n, h, w]"), "{e}");
        let far = crate::npy::NpyArray {
            shape: vec![1, 1, 2],
            data: vec![-3.0, 0.0],
        };
        assert!(ImageDataset::from_npy(far, &path).is_err());
    }

    #[test]
    fn xflip_appends_each_image_mirrored_left_right() {
        let d = ImageDataset::from_npy(
            crate::npy::NpyArray {
                shape: vec![1, 2, 3],
                data: vec![0.0, 0.5, 1.0, 1.0, 0.5, 0.0],
            },
            Path::new("x.npy"),
        )
        .unwrap();
        let f = d.with_xflip();
        assert_eq!((f.num_images(), f.labels.clone()), (2, vec![0, 0]));
        assert_eq!(&f.pixels[6..], &[1.0, 0.0, -1.0, -1.0, 0.0, 1.0]);
    }

    #[test]
    fn resize_averages_covered_pixels_and_crops_the_centre() {
        // 4×4 to 2×2: each output is the mean of its 2×2 block.
        let v: Vec<f32> = (0..16).map(|x| x as f32).collect();
        assert_eq!(
            resize_center_crop(&v, [1, 4, 4], 2),
            vec![2.5, 4.5, 10.5, 12.5]
        );
        // 2×4 to 2: the shorter side is already 2, so only the centre 2 columns stay.
        let v = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0];
        assert_eq!(
            resize_center_crop(&v, [1, 2, 4], 2),
            vec![10.0, 20.0, 50.0, 60.0]
        );
        // 3×3 to 2: a third-pixel overlap weighs a third; the mean is kept.
        let v = [9.0f32; 9];
        let r = resize_center_crop(&v, [1, 3, 3], 2);
        assert!(r.iter().all(|x| (x - 9.0).abs() < 1e-5), "{r:?}");
        // Upscaling repeats pixels.
        assert_eq!(
            resize_center_crop(&[1.0, 2.0], [1, 1, 2], 2),
            vec![1.0, 2.0, 1.0, 2.0]
        );
    }

    #[test]
    fn a_streamed_folder_reads_what_memory_holds_and_names_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("a/x.png"), 4, 3, 1, 10);
        png(&dir.path().join("b/y.png"), 4, 3, 3, 200);
        let mem = ImageDataset::from_folder(dir.path()).unwrap();
        let st = StreamedFolder::open(dir.path(), None).unwrap();
        assert_eq!(
            (st.len(), st.image_shape, st.num_classes),
            (2, [3, 3, 4], 2)
        );
        let streamed: Vec<f32> = (0..2).flat_map(|i| st.image(i).unwrap()).collect();
        assert_eq!(streamed, mem.pixels, "bit for bit");
        assert_eq!(st.labels, mem.labels);
        // A file replaced by another size after opening, or removed: errors naming it.
        png(&dir.path().join("b/y.png"), 5, 3, 3, 200);
        let e = st.image(1).unwrap_err().to_string();
        assert!(e.contains("y.png") && e.contains("changed"), "{e}");
        std::fs::remove_file(dir.path().join("a/x.png")).unwrap();
        let e = st.image(0).unwrap_err().to_string();
        assert!(e.contains("x.png"), "{e}");
    }

    #[test]
    fn a_folder_of_mixed_sizes_reads_at_one_resolution() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("a.png"), 8, 4, 3, 200);
        png(&dir.path().join("b.png"), 6, 6, 1, 100);
        assert!(ImageDataset::from_folder(dir.path()).is_err());
        let d = ImageDataset::from_folder_at(dir.path(), Some(4)).unwrap();
        assert_eq!(d.image_shape, [3, 4, 4]);
        let want = [200.0f32 / 127.5 - 1.0, 100.0 / 127.5 - 1.0];
        assert!((d.pixels[0] - want[0]).abs() < 1e-6 && (d.pixels[48] - want[1]).abs() < 1e-6);
    }
}
