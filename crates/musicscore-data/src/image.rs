//! Page decoding, resizing and staff-system tiles.
//!
//! Pages are baseline JPEGs (PNG is accepted too). Decoding checks the size in the
//! header against [`DecodeOptions::max_pixels`] before allocating, asks the JPEG decoder
//! for its DCT-domain downscale (1/2, 1/4, 1/8) when the target is smaller, and finishes
//! with an exact area-average resample. A third-party decoder panic is caught and turned
//! into an error, so a hostile file cannot bring a training run down.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::error::{MusicScoreError, Result};

/// Grayscale or RGB output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// One channel (ITU-R BT.601 luma).
    Gray,
    /// Three channels.
    Rgb,
}

impl ColorMode {
    /// Channels per pixel.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Gray => 1,
            ColorMode::Rgb => 3,
        }
    }
}

/// How a page becomes a training image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resize {
    /// Scale the whole page to fit `width × height`, pad with white (keeps the page
    /// readable as a page).
    FitPad {
        /// Output width.
        width: usize,
        /// Output height.
        height: usize,
    },
    /// Scale to cover `width × height` and cut out the centre.
    CentreCrop {
        /// Output width.
        width: usize,
        /// Output height.
        height: usize,
    },
    /// Square tiles of `size` along each staff system, at `scale` × the page's native
    /// resolution (1.0 keeps every pixel; bands taller than a tile are scaled down).
    Tiles {
        /// Tile side.
        size: usize,
        /// Resolution relative to the file.
        scale: f64,
    },
}

/// Decoding options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodeOptions {
    /// Channels of the output.
    pub color: ColorMode,
    /// Pages with more pixels than this are refused before decoding (default 64 M,
    /// e.g. 8 000 × 8 000; a 200 dpi A4 page is 3.9 M).
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            color: ColorMode::Gray,
            max_pixels: 64_000_000,
        }
    }
}

/// An 8-bit image, rows of interleaved channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// `height × width × channels` bytes.
    pub data: Vec<u8>,
}

impl Raster {
    /// A white image.
    pub fn white(width: usize, height: usize, channels: usize) -> Raster {
        Raster {
            width,
            height,
            channels,
            data: vec![255; width * height * channels],
        }
    }

    /// Copy `src` into `self` with its top-left corner at `(x, y)` (clipped).
    pub fn paste(&mut self, src: &Raster, x: isize, y: isize) {
        let c = self.channels.min(src.channels);
        for sy in 0..src.height {
            let ty = y + sy as isize;
            if ty < 0 || ty >= self.height as isize {
                continue;
            }
            for sx in 0..src.width {
                let tx = x + sx as isize;
                if tx < 0 || tx >= self.width as isize {
                    continue;
                }
                let si = (sy * src.width + sx) * src.channels;
                let ti = (ty as usize * self.width + tx as usize) * self.channels;
                self.data[ti..ti + c].copy_from_slice(&src.data[si..si + c]);
            }
        }
    }

    /// The sub-image `[x, x+w) × [y, y+h)` (clipped to the image).
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Raster {
        let (x, y) = (x.min(self.width), y.min(self.height));
        let (w, h) = (w.min(self.width - x), h.min(self.height - y));
        let mut data = Vec::with_capacity(w * h * self.channels);
        for r in y..y + h {
            let s = (r * self.width + x) * self.channels;
            data.extend_from_slice(&self.data[s..s + w * self.channels]);
        }
        Raster {
            width: w,
            height: h,
            channels: self.channels,
            data,
        }
    }

    /// Luma of pixel `i`.
    pub fn luma(&self, i: usize) -> u8 {
        if self.channels == 1 {
            self.data[i]
        } else {
            let p = &self.data[i * self.channels..];
            luma(p[0], p[1], p[2])
        }
    }

    /// Pixels in `[0, 1]`, channel-major (`C × H × W`), as a tensor wants them.
    pub fn to_chw_f32(&self) -> Vec<f32> {
        let n = self.width * self.height;
        let mut out = vec![0.0f32; n * self.channels];
        for c in 0..self.channels {
            for i in 0..n {
                out[c * n + i] = self.data[i * self.channels + c] as f32 / 255.0;
            }
        }
        out
    }
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

fn img_err(source: &str, message: impl Into<String>) -> MusicScoreError {
    MusicScoreError::Image {
        source_name: source.to_string(),
        message: message.into(),
    }
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// Width and height from the file header alone.
pub fn image_size(bytes: &[u8], source: &str) -> Result<(usize, usize)> {
    guarded(source, || {
        if is_png(bytes) {
            let r = png::Decoder::new(Cursor::new(bytes))
                .read_info()
                .map_err(|e| img_err(source, format!("PNG: {e}")))?;
            let i = r.info();
            return Ok((i.width as usize, i.height as usize));
        }
        let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        d.read_info()
            .map_err(|e| img_err(source, format!("JPEG: {e}")))?;
        let i = d
            .info()
            .ok_or_else(|| img_err(source, "JPEG: no frame header"))?;
        Ok((i.width as usize, i.height as usize))
    })
}

fn guarded<T>(source: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(img_err(source, "the image decoder panicked on this file")))
}

/// Decode a page. `at_least`, when given, lets a JPEG be decoded at a DCT-domain scale
/// (1/8 … 1) whose size is still at least `(width, height)`.
pub fn decode(
    bytes: &[u8],
    opts: &DecodeOptions,
    at_least: Option<(usize, usize)>,
    source: &str,
) -> Result<Raster> {
    guarded(source, || {
        if is_png(bytes) {
            decode_png(bytes, opts, source)
        } else {
            decode_jpeg(bytes, opts, at_least, source)
        }
    })
}

fn check_size(w: usize, h: usize, opts: &DecodeOptions, source: &str) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(img_err(source, format!("empty image {w}×{h}")));
    }
    if (w as u64) * (h as u64) > opts.max_pixels {
        return Err(img_err(
            source,
            format!(
                "image of {w}×{h} pixels exceeds the limit of {} pixels",
                opts.max_pixels
            ),
        ));
    }
    Ok(())
}

fn decode_jpeg(
    bytes: &[u8],
    opts: &DecodeOptions,
    at_least: Option<(usize, usize)>,
    source: &str,
) -> Result<Raster> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.read_info()
        .map_err(|e| img_err(source, format!("JPEG: {e}")))?;
    let info = d
        .info()
        .ok_or_else(|| img_err(source, "JPEG: no frame header"))?;
    let (w0, h0) = (info.width as usize, info.height as usize);
    check_size(w0, h0, opts, source)?;
    d.set_max_decoding_buffer_size((opts.max_pixels * 4) as usize);
    let (w, h) = match at_least {
        Some((rw, rh)) if rw < w0 && rh < h0 => {
            let (w, h) = d
                .scale(rw.max(1) as u16, rh.max(1) as u16)
                .map_err(|e| img_err(source, format!("JPEG: {e}")))?;
            (w as usize, h as usize)
        }
        _ => (w0, h0),
    };
    let px = d
        .decode()
        .map_err(|e| img_err(source, format!("JPEG: {e}")))?;
    use jpeg_decoder::PixelFormat as P;
    let (src_c, bpc) = match info.pixel_format {
        P::L8 => (1, 1),
        P::L16 => (1, 2),
        P::RGB24 => (3, 1),
        P::CMYK32 => (4, 1),
    };
    if px.len() < w * h * src_c * bpc {
        return Err(img_err(source, "JPEG: decoder returned too few pixels"));
    }
    Ok(build_raster(w, h, opts.color, src_c == 1, |i| {
        match info.pixel_format {
            P::L8 => (px[i], px[i], px[i]),
            P::L16 => (px[2 * i], px[2 * i], px[2 * i]),
            P::RGB24 => (px[3 * i], px[3 * i + 1], px[3 * i + 2]),
            P::CMYK32 => {
                let p = &px[4 * i..4 * i + 4];
                let k = 255 - p[3] as u32;
                let f = |c: u8| ((255 - c as u32) * k / 255) as u8;
                (f(p[0]), f(p[1]), f(p[2]))
            }
        }
    }))
}

/// A raster in `color` from a source pixel function; a gray source is copied, not
/// passed through the luma formula.
fn build_raster(
    w: usize,
    h: usize,
    color: ColorMode,
    gray_source: bool,
    px: impl Fn(usize) -> (u8, u8, u8),
) -> Raster {
    let channels = color.channels();
    let mut data = Vec::with_capacity(w * h * channels);
    for i in 0..w * h {
        let (r, g, b) = px(i);
        match color {
            ColorMode::Gray => data.push(if gray_source { r } else { luma(r, g, b) }),
            ColorMode::Rgb => data.extend_from_slice(&[r, g, b]),
        }
    }
    Raster {
        width: w,
        height: h,
        channels,
        data,
    }
}

fn decode_png(bytes: &[u8], opts: &DecodeOptions, source: &str) -> Result<Raster> {
    let mut dec = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: (opts.max_pixels * 8) as usize,
        },
    );
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec
        .read_info()
        .map_err(|e| img_err(source, format!("PNG: {e}")))?;
    let (w, h) = (r.info().width as usize, r.info().height as usize);
    check_size(w, h, opts, source)?;
    let size = r
        .output_buffer_size()
        .ok_or_else(|| img_err(source, "PNG: image too large"))?;
    let mut buf = vec![0; size];
    let frame = r
        .next_frame(&mut buf)
        .map_err(|e| img_err(source, format!("PNG: {e}")))?;
    let c = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(img_err(source, "PNG: palette not expanded")),
    };
    Ok(build_raster(w, h, opts.color, c < 3, |i| {
        let p = &buf[i * c..i * c + c];
        if c < 3 {
            (p[0], p[0], p[0])
        } else {
            (p[0], p[1], p[2])
        }
    }))
}

/// Source pixel weights of each output pixel of an area-average resample of `n` pixels
/// to `m` pixels: output `j` covers `[j n/m, (j+1) n/m)`.
fn area_weights(n: usize, m: usize) -> Vec<Vec<(usize, f32)>> {
    let ratio = n as f64 / m as f64;
    (0..m)
        .map(|j| {
            let (a, b) = (j as f64 * ratio, (j + 1) as f64 * ratio);
            let mut w = Vec::new();
            let mut i = a.floor() as usize;
            while (i as f64) < b && i < n {
                let lo = a.max(i as f64);
                let hi = b.min(i as f64 + 1.0);
                if hi > lo {
                    w.push((i, ((hi - lo) / ratio) as f32));
                }
                i += 1;
            }
            w
        })
        .collect()
}

/// Area-average resample to `width × height` (exact box filter when shrinking; pixel
/// replication when growing).
pub fn resample(src: &Raster, width: usize, height: usize) -> Raster {
    if src.width == width && src.height == height {
        return src.clone();
    }
    let (width, height) = (width.max(1), height.max(1));
    let c = src.channels;
    let wx = area_weights(src.width, width);
    let wy = area_weights(src.height, height);
    // Horizontal pass into f32 rows, then vertical.
    let mut tmp = vec![0f32; src.height * width * c];
    for y in 0..src.height {
        let row = &src.data[y * src.width * c..(y + 1) * src.width * c];
        for (x, ws) in wx.iter().enumerate() {
            for ch in 0..c {
                let mut acc = 0f32;
                for &(i, w) in ws {
                    acc += w * row[i * c + ch] as f32;
                }
                tmp[(y * width + x) * c + ch] = acc;
            }
        }
    }
    let mut data = vec![0u8; width * height * c];
    for (y, ws) in wy.iter().enumerate() {
        for x in 0..width * c {
            let mut acc = 0f32;
            for &(i, w) in ws {
                acc += w * tmp[i * width * c + x];
            }
            data[y * width * c + x] = acc.round().clamp(0.0, 255.0) as u8;
        }
    }
    Raster {
        width,
        height,
        channels: c,
        data,
    }
}

fn scaled(w: usize, h: usize, s: f64) -> (usize, usize) {
    (
        ((w as f64 * s).round() as usize).max(1),
        ((h as f64 * s).round() as usize).max(1),
    )
}

/// Decode a page straight to a training image (all modes but [`Resize::Tiles`], which
/// gives several images: see [`decode_tiles`]).
pub fn decode_resized(
    bytes: &[u8],
    opts: &DecodeOptions,
    resize: &Resize,
    source: &str,
) -> Result<Raster> {
    let (w0, h0) = image_size(bytes, source)?;
    match *resize {
        Resize::FitPad { width, height } => {
            score_core::limits::ensure_image_size("--resize", width as u64, height as u64)?;
            let s = (width as f64 / w0 as f64).min(height as f64 / h0 as f64);
            let (w, h) = scaled(w0, h0, s);
            let (w, h) = (w.min(width), h.min(height));
            let img = resample(&decode(bytes, opts, Some((w, h)), source)?, w, h);
            let mut out = Raster::white(width, height, img.channels);
            out.paste(
                &img,
                ((width - w) / 2) as isize,
                ((height - h) / 2) as isize,
            );
            Ok(out)
        }
        Resize::CentreCrop { width, height } => {
            let s = (width as f64 / w0 as f64).max(height as f64 / h0 as f64);
            let (w, h) = scaled(w0, h0, s);
            let (w, h) = (w.max(width), h.max(height));
            // A crop far from the page's aspect (crop:50000x1) scales the page to
            // billions of pixels before cutting: refuse it, naming the page.
            score_core::limits::ensure_image_size(
                &format!("--resize (page {source})"),
                w as u64,
                h as u64,
            )?;
            let img = resample(&decode(bytes, opts, Some((w, h)), source)?, w, h);
            Ok(img.crop((w - width) / 2, (h - height) / 2, width, height))
        }
        Resize::Tiles { .. } => Err(MusicScoreError::Invalid(
            "tiles give several images per page: use decode_tiles".into(),
        )),
    }
}

/// Horizontal bands of a page holding staff systems, as `(top, bottom)` rows.
///
/// 1. Staff lines are where two adjacent rows together hold more than 0.3 of a row of
///    ink (mean darkness 1 − luma/255; a thin line drawn between two pixel rows at
///    100 dpi spreads over both, a thick 200 dpi line fills one or more), and at least
///    0.6 of the columns hold 0.2 of a pixel of ink over the two rows: a line crosses
///    the system, while on a narrow crop of a system the clefs and signatures that fill
///    rows between the lines cover only part of them. Adjacent such rows are one line. The staff space `s` is the median distance between lines.
/// 2. Lines at most 2.5 `s` apart form one candidate staff (a lost line leaves a gap of
///    2 `s`; staves of a system are 4 or more `s` apart); it is a staff when it has 4 to
///    6 lines (five, with one missed or one extra tolerated) evenly spaced ([`is_staff`]):
///    hairpins, beams, text rows and noise that pass step 1 alone are dropped.
/// 3. Two consecutive staves belong to one system when some pair of adjacent columns
///    holds at least 0.35 of a pixel of ink on at least 90 % of the rows between them:
///    the system's opening barline or brace.
/// 4. A system's band reaches halfway to the neighbouring system, and at most 6 `s`
///    beyond its outer staff lines (ledger lines, dynamics).
///
/// Pages without detectable staff lines give no bands.
pub fn staff_systems(page: &Raster) -> Vec<(usize, usize)> {
    detect_systems(page).iter().map(|s| s.band).collect()
}

/// A staff system found by [`detect_systems`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct System {
    /// The band `(top, bottom)` rows, margins included ([`staff_systems`] step 4).
    pub band: (usize, usize),
    /// Rows from the top line of its first staff to the bottom line of its last.
    pub staff_rows: (usize, usize),
    /// Its number of staves.
    pub staves: usize,
    /// The staff space (median line distance on the page), in pixels.
    pub space: f64,
}

/// Whether a group of line candidates (indices into `lines`) is a staff: 4 to 6 lines
/// (five, with one missed or one extra tolerated), evenly spaced: every gap within
/// 0.6–1.4 of the group's median gap, except at most one within 1.6–2.4 of it (a line
/// lost where notes between two lines merged them into one run).
fn is_staff(g: &[usize], centres: &[f64]) -> bool {
    if !(4..=6).contains(&g.len()) {
        return false;
    }
    let gaps: Vec<f64> = g
        .windows(2)
        .map(|p| centres[p[1]] - centres[p[0]])
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let med = sorted[sorted.len() / 2];
    let single = |d: f64| (0.6 * med..=1.4 * med).contains(&d);
    let double = |d: f64| (1.6 * med..=2.4 * med).contains(&d);
    let doubles = gaps.iter().filter(|&&d| double(d)).count();
    doubles <= 1 && gaps.iter().all(|&d| single(d) || double(d))
}

/// The staff systems of a page, top to bottom, with their staff counts (the steps of
/// [`staff_systems`]).
pub fn detect_systems(page: &Raster) -> Vec<System> {
    let h = page.height;
    // 1.–2. Staff lines, grouped into staves.
    let found = detect_staves(page);
    let Some(space) = found.first().map(|s| s.space) else {
        return Vec::new();
    };
    let staves: Vec<(usize, usize)> = found.iter().map(|s| s.rows).collect();
    // 3. Systems: runs of staves joined by a vertical line.
    let systems = join_staves(page, &staves);
    // 4. Bands with margins.
    let reach = (6.0 * space) as usize;
    (0..systems.len())
        .map(|k| {
            let (a, b, staves) = systems[k];
            let up = if k == 0 {
                reach
            } else {
                ((a - systems[k - 1].1) / 2).min(reach)
            };
            let down = if k + 1 == systems.len() {
                reach
            } else {
                ((systems[k + 1].0 - b) / 2).min(reach)
            };
            System {
                band: (a.saturating_sub(up), (b + down).min(h)),
                staff_rows: (a, b),
                staves,
                space,
            }
        })
        .collect()
}

/// A staff found by [`detect_staves`].
#[derive(Debug, Clone, PartialEq)]
pub struct Staff {
    /// Rows from its top line's first row to one past its bottom line's last.
    pub rows: (usize, usize),
    /// The centre row of each detected line, top to bottom (4 to 6 of them).
    pub lines: Vec<f64>,
    /// The staff space (median line distance on the page), in pixels.
    pub space: f64,
}

/// The staves of a page, top to bottom: steps 1 and 2 of [`staff_systems`].
pub fn detect_staves(page: &Raster) -> Vec<Staff> {
    if page.width == 0 || page.height == 0 {
        return Vec::new();
    }
    let lines = staff_lines(page);
    if lines.len() < 2 {
        return Vec::new();
    }
    let centres: Vec<f64> = lines.iter().map(|&(a, b)| (a + b) as f64 / 2.0).collect();
    let mut gaps: Vec<f64> = centres.windows(2).map(|p| p[1] - p[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let space = gaps[gaps.len() / 2].max(1.0);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for k in 0..lines.len() {
        match groups.last_mut() {
            Some(g) if centres[k] - centres[k - 1] <= 2.5 * space => g.push(k),
            _ => groups.push(vec![k]),
        }
    }
    groups
        .iter()
        .filter(|g| is_staff(g, &centres))
        .map(|g| Staff {
            rows: (lines[g[0]].0, lines[g[g.len() - 1]].1),
            lines: g.iter().map(|&k| centres[k]).collect(),
            space,
        })
        .collect()
}

/// The ink of pixel `i` of `page`: 0 on white, 1 on black.
fn ink_at(page: &Raster, i: usize) -> f64 {
    1.0 - page.luma(i) as f64 / 255.0
}

/// Staff lines of `page`: runs of rows (first, one past last) dark enough on average
/// and covered across most of the width.
fn staff_lines(page: &Raster) -> Vec<(usize, usize)> {
    let (w, h) = (page.width, page.height);
    let ink = |i: usize| ink_at(page, i);
    let row: Vec<f64> = (0..h)
        .map(|y| (0..w).map(|x| ink(y * w + x)).sum::<f64>() / w as f64)
        .collect();
    let pair =
        |x: usize, y: usize| ink(y * w + x) + if y + 1 < h { ink((y + 1) * w + x) } else { 0.0 };
    let covered = |y: usize| (0..w).filter(|&x| pair(x, y) >= 0.2).count();
    let mut lines: Vec<(usize, usize)> = Vec::new();
    for y in 0..h {
        if row[y] + row.get(y + 1).copied().unwrap_or(0.0) > 0.3
            && covered(y) as f64 >= 0.6 * w as f64
        {
            match lines.last_mut() {
                Some((_, b)) if *b == y => *b = y + 1,
                _ => lines.push((y, y + 1)),
            }
        }
    }
    lines
}

/// Systems of `staves` (row ranges, top to bottom): runs of staves joined by a vertical
/// line (a brace or barline), as (first row, one past last row, staves).
fn join_staves(page: &Raster, staves: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    let w = page.width;
    let ink = |i: usize| ink_at(page, i);
    let joined = |upper: (usize, usize), lower: (usize, usize)| -> bool {
        let (y0, y1) = (upper.1, lower.0);
        if y1 <= y0 {
            return true;
        }
        let need = ((y1 - y0) as f64 * 0.9).ceil() as usize;
        (0..w.saturating_sub(1)).any(|x| {
            (y0..y1)
                .filter(|&y| ink(y * w + x) + ink(y * w + x + 1) >= 0.35)
                .count()
                >= need
        })
    };
    let mut systems: Vec<(usize, usize, usize)> = Vec::new();
    for (k, &st) in staves.iter().enumerate() {
        if k > 0 && joined(staves[k - 1], st) {
            if let Some(sys) = systems.last_mut() {
                sys.1 = st.1;
                sys.2 += 1;
            }
        } else {
            systems.push((st.0, st.1, 1));
        }
    }
    systems
}

/// Staff-system tiles of a page: each system band ([`staff_systems`]) at `scale` × native resolution, shrunk further only if taller than `size`, cut into
/// `size`-wide pieces (the last one aligned to the right edge), each centred vertically
/// on a white `size × size` square.
pub fn decode_tiles(
    bytes: &[u8],
    opts: &DecodeOptions,
    size: usize,
    scale: f64,
    source: &str,
) -> Result<Vec<Raster>> {
    if size == 0 || !(scale > 0.0 && scale <= 1.0) {
        return Err(MusicScoreError::Invalid(format!(
            "tiles: size {size} and scale {scale} (need size > 0, 0 < scale ≤ 1)"
        )));
    }
    let (w0, h0) = image_size(bytes, source)?;
    let (w, h) = scaled(w0, h0, scale);
    let page = resample(&decode(bytes, opts, Some((w, h)), source)?, w, h);
    let mut tiles = Vec::new();
    for (top, bottom) in staff_systems(&page) {
        let mut band = page.crop(0, top, page.width, bottom - top);
        if band.height > size {
            let s = size as f64 / band.height as f64;
            let (bw, bh) = scaled(band.width, band.height, s);
            band = resample(&band, bw, bh.min(size));
        }
        let pieces = band.width.div_ceil(size).max(1);
        for k in 0..pieces {
            let x = if k + 1 == pieces {
                band.width.saturating_sub(size)
            } else {
                k * size
            };
            let piece = band.crop(x, 0, size, band.height);
            let mut tile = Raster::white(size, size, band.channels);
            tile.paste(&piece, 0, ((size - piece.height) / 2) as isize);
            tiles.push(tile);
        }
    }
    Ok(tiles)
}

/// Cheap per-page facts for statistics and filters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PageFacts {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Ink ratio: 1 − mean luma / 255 of the page, measured on the 1/8-scale decode
    /// (the mean is what an area average preserves, so the scale does not bias it).
    pub ink: f64,
    /// 64-bit difference hash of the page at 9×8: pages that look the same share it.
    pub dhash: u64,
    /// Hash of the file bytes (exact duplicates).
    pub content_hash: u64,
}

/// Measure [`PageFacts`] of a page file.
pub fn page_facts(bytes: &[u8], max_pixels: u64, source: &str) -> Result<PageFacts> {
    use std::hash::{Hash, Hasher};
    let opts = DecodeOptions {
        color: ColorMode::Gray,
        max_pixels,
    };
    let (width, height) = image_size(bytes, source)?;
    let small = decode(
        bytes,
        &opts,
        Some((width.div_ceil(8), height.div_ceil(8))),
        source,
    )?;
    let sum: u64 = small.data.iter().map(|&v| v as u64).sum();
    let ink = 1.0 - sum as f64 / (255.0 * small.data.len() as f64);
    let t = resample(&small, 9, 8);
    let mut dhash = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            dhash = (dhash << 1) | (t.data[y * 9 + x] > t.data[y * 9 + x + 1]) as u64;
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Ok(PageFacts {
        width,
        height,
        ink,
        dhash,
        content_hash: hasher.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_unevenly_spaced_lines_are_not_a_staff() {
        // Lines 7 px apart form a staff; gaps 7, 4, 10, 7 do not (4 < 0.6 × 7). Four
        // lines with one double gap (a line lost) still do; two double gaps do not.
        let page = |ys: &[usize]| {
            let mut r = Raster::white(200, 100, 1);
            for &y in ys {
                r.data[y * 200..(y + 1) * 200].fill(0);
            }
            r
        };
        assert_eq!(detect_systems(&page(&[30, 37, 44, 51, 58])).len(), 1);
        assert!(detect_systems(&page(&[30, 37, 41, 51, 58])).is_empty());
        assert_eq!(detect_systems(&page(&[30, 37, 51, 58])).len(), 1);
        assert!(detect_systems(&page(&[30, 44, 51, 65])).is_empty());
    }

    #[test]
    fn area_resample_preserves_mean_and_constant() {
        let mut src = Raster::white(10, 7, 1);
        for (i, v) in src.data.iter_mut().enumerate() {
            *v = (i * 37 % 256) as u8;
        }
        let mean = |r: &Raster| r.data.iter().map(|&v| v as f64).sum::<f64>() / r.data.len() as f64;
        // 10→5 and 7→7: each output is the mean of two inputs, so the image mean is
        // kept up to rounding (±0.5 per pixel).
        let half = resample(&src, 5, 7);
        assert!((mean(&half) - mean(&src)).abs() <= 0.5);
        let c = Raster {
            data: vec![77; 10 * 7],
            ..src.clone()
        };
        assert!(resample(&c, 3, 4).data.iter().all(|&v| v == 77));
        let w = area_weights(10, 3);
        for ws in &w {
            let s: f32 = ws.iter().map(|x| x.1).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn png_round_trip_and_colour_conversion() {
        // PNG is lossless: encode → decode gives the same pixels, gray and RGB.
        let mut rgb = Raster::white(7, 5, 3);
        for (i, v) in rgb.data.iter_mut().enumerate() {
            *v = (i * 29 % 256) as u8;
        }
        let bytes = crate::export::encode_png(&rgb).unwrap();
        let rgb_opts = DecodeOptions {
            color: ColorMode::Rgb,
            ..Default::default()
        };
        assert_eq!(decode(&bytes, &rgb_opts, None, "t.png").unwrap(), rgb);
        // Gray output of an RGB source is BT.601 luma, rounded.
        let gray = decode(&bytes, &DecodeOptions::default(), None, "t.png").unwrap();
        for i in 0..35 {
            let p = &rgb.data[3 * i..3 * i + 3];
            let want = (0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).round();
            assert!((gray.data[i] as f64 - want).abs() <= 1.0);
        }
        // A gray source is copied into all three channels.
        let g = Raster {
            width: 7,
            height: 5,
            channels: 1,
            data: gray.data.clone(),
        };
        let back = decode(
            &crate::export::encode_png(&g).unwrap(),
            &rgb_opts,
            None,
            "g.png",
        )
        .unwrap();
        assert!((0..35).all(|i| back.data[3 * i..3 * i + 3] == [g.data[i]; 3]));
        assert_eq!(image_size(&bytes, "t.png").unwrap(), (7, 5));
    }

    #[test]
    fn gray_jpeg_decodes_in_both_modes_and_scales() {
        let (w, h) = (64u16, 48u16);
        let px: Vec<u8> = (0..w as usize * h as usize)
            .map(|i| if (i / 64) % 8 < 4 { 0 } else { 255 })
            .collect();
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 95)
            .encode(&px, w, h, jpeg_encoder::ColorType::Luma)
            .unwrap();
        let g = decode(&bytes, &DecodeOptions::default(), None, "g.jpg").unwrap();
        assert_eq!((g.width, g.height, g.channels), (64, 48, 1));
        // Bands of 4 black rows, 4 white rows: JPEG at quality 95 keeps them within 32.
        assert!(g.data[0] < 32 && g.data[5 * 64] > 223);
        let c = decode(
            &bytes,
            &DecodeOptions {
                color: ColorMode::Rgb,
                ..Default::default()
            },
            None,
            "g.jpg",
        )
        .unwrap();
        assert_eq!(c.channels, 3);
        assert!((0..64 * 48).all(|i| c.data[3 * i] == g.data[i] && c.data[3 * i + 2] == g.data[i]));
        // DCT-domain scaling: asking for at least 16×12 gives 1/4 scale.
        let s = decode(&bytes, &DecodeOptions::default(), Some((16, 12)), "g.jpg").unwrap();
        assert_eq!((s.width, s.height), (16, 12));
    }
}
