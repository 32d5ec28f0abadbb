//! PNG image grids for samples and data.

use std::path::Path;

use score_core::error::{Result, ScoreError};

/// Write `n` images `[n, c, h, w]` (values in [−1, 1], c = 1 or 3) as one PNG grid with
/// `cols` columns and a 2-pixel border, atomically.
pub fn write_image_grid(path: &Path, images: &[f32], shape: [usize; 4], cols: usize) -> Result<()> {
    let bytes = image_grid_png(images, shape, cols)?;
    score_core::fs::write_atomic(path, &bytes)
}

/// The PNG bytes of [`write_image_grid`].
pub fn image_grid_png(images: &[f32], shape: [usize; 4], cols: usize) -> Result<Vec<u8>> {
    let [n, c, h, w] = shape;
    if images.len() != n * c * h * w || n == 0 || !(c == 1 || c == 3) {
        return Err(ScoreError::invalid(
            "images",
            format!(
                "{} values for shape {shape:?} (need n > 0 and 1 or 3 channels)",
                images.len()
            ),
        ));
    }
    let cols = cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let pad = 2;
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    let mut buf = vec![255u8; gw * gh * c];
    for k in 0..n {
        let (gy, gx) = (pad + (k / cols) * (h + pad), pad + (k % cols) * (w + pad));
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = images[((k * c + ch) * h + y) * w + x];
                    let byte = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                    buf[((gy + y) * gw + gx + x) * c + ch] = byte;
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, gw as u32, gh as u32);
    enc.set_color(if c == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    enc.set_depth(png::BitDepth::Eight);
    let enc_err = |e: png::EncodingError| ScoreError::invalid("images", format!("PNG: {e}"));
    let mut writer = enc.write_header().map_err(enc_err)?;
    writer.write_image_data(&buf).map_err(enc_err)?;
    writer.finish().map_err(enc_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_decodable_grid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        let imgs: Vec<f32> = (0..3 * 4 * 5).map(|i| (i as f32 / 30.0) - 1.0).collect();
        write_image_grid(&p, &imgs, [3, 1, 4, 5], 2).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (2 * 7 + 2, 2 * 6 + 2));
        assert!(write_image_grid(&p, &imgs, [3, 2, 4, 5], 2).is_err());
    }
}

/// One image `[c, h, w]` in [−1, 1] (c = 1 gray, 3 RGB) as 8-bit PNG bytes, quantised
/// as EDM's `generate.py` does: `clip(x·127.5 + 128, 0, 255)`, truncated.
pub fn image_png(pixels: &[f32], [c, h, w]: [usize; 3]) -> Result<Vec<u8>> {
    let color = match c {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        _ => {
            return Err(ScoreError::invalid(
                "image",
                format!("{c} channels: 1 or 3"),
            ));
        }
    };
    if pixels.len() != c * h * w {
        return Err(ScoreError::invalid(
            "image",
            format!("{} values for {c}×{h}×{w}", pixels.len()),
        ));
    }
    let mut bytes = vec![0u8; c * h * w];
    for k in 0..c {
        for p in 0..h * w {
            bytes[p * c + k] = (pixels[k * h * w + p] * 127.5 + 128.0).clamp(0.0, 255.0) as u8;
        }
    }
    let mut out = Vec::new();
    let bad = |e: png::EncodingError| ScoreError::invalid("image", e.to_string());
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(bad)?;
    wr.write_image_data(&bytes).map_err(bad)?;
    wr.finish().map_err(bad)?;
    Ok(out)
}

/// Read an 8-bit PNG as `(channels, height, width, planar bytes [c, h, w])`: grayscale
/// gives 1 channel, RGB 3; an alpha channel is dropped; palette images are expanded;
/// 16-bit images are reduced to their high byte.
pub fn read_png_u8(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let file = score_core::fs::open_file(path)?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let bad = |e: png::DecodingError| ScoreError::format(path, "PNG", e.to_string());
    let mut reader = dec.read_info().map_err(bad)?;
    let (w, h) = reader.info().size();
    score_core::limits::ensure_image_size(&path.display().to_string(), w.into(), h.into())?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ScoreError::format(path, "PNG", "image too large"))?;
    score_core::limits::ensure_fits(&path.display().to_string(), size as u128, "a smaller image")?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (stored, keep) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        other => {
            return Err(ScoreError::format(
                path,
                "PNG",
                format!("colour type {other:?}"),
            ));
        }
    };
    let mut out = vec![0u8; keep * h * w];
    for y in 0..h {
        let row = &buf[y * info.line_size..];
        for x in 0..w {
            for c in 0..keep {
                out[(c * h + y) * w + x] = row[x * stored + c];
            }
        }
    }
    Ok((keep, h, w, out))
}

#[cfg(test)]
mod png_tests {
    use super::*;

    #[test]
    fn a_written_grid_reads_back() {
        // One 2×3 grayscale image: the grid has a 2-pixel white border around it.
        let px = [-1.0f32, 0.0, 1.0, 1.0, 0.0, -1.0];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        write_image_grid(&p, &px, [1, 1, 2, 3], 1).unwrap();
        let (c, h, w, data) = read_png_u8(&p).unwrap();
        assert_eq!((c, h, w), (1, 6, 7));
        assert_eq!(&data[2 * 7 + 2..2 * 7 + 5], &[0, 128, 255]);
        assert_eq!(data[0], 255);
        std::fs::write(&p, b"not a png").unwrap();
        assert!(read_png_u8(&p).unwrap_err().to_string().contains("g.png"));
    }
}
