//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.), plain or gzip-compressed.
//!
//! Layout: two zero bytes, a type code (0x08 = unsigned byte, the only type these data
//! sets use), the number of dimensions, each dimension as a big-endian u32, then the
//! values in row-major order. A truncated or malformed file is an error naming the file
//! and what was wrong, never a panic.

use std::io::Read;
use std::path::Path;

use score_core::error::{Result, ScoreError};

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Read an IDX file (gzip-compressed when it starts with the gzip magic bytes).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = score_core::fs::read_file(path)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                ScoreError::format(
                    path,
                    "IDX (gzip)",
                    format!("gzip stream is corrupt or truncated: {e}"),
                )
            })?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|detail| ScoreError::format(path, "IDX", detail))
}

/// Parse IDX bytes; the error string names the field that is wrong.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "header: file has {} bytes, the magic number needs 4",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "magic: first two bytes must be 0, got {:#04x} {:#04x}",
            bytes[0], bytes[1]
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "magic: type code {:#04x} is not 0x08 (unsigned byte)",
            bytes[2]
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err("magic: number of dimensions is 0".into());
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format!(
            "dimensions: header needs {header} bytes for {ndim} dimensions, file has {}",
            bytes.len()
        ));
    }
    let shape: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| format!("dimensions: {shape:?} overflow"))?;
    let body = bytes.len() - header;
    if body != count {
        return Err(format!(
            "data: dimensions {shape:?} need {count} bytes of data, file has {body}{}",
            if body < count {
                " (truncated)"
            } else {
                " (trailing bytes)"
            }
        ));
    }
    Ok(IdxArray {
        shape,
        data: bytes[header..].to_vec(),
    })
}

/// Write an IDX file of unsigned bytes (uncompressed).
pub fn write_idx(path: &Path, shape: &[usize], data: &[u8]) -> Result<()> {
    if score_core::limits::element_count("shape", shape)? != data.len() {
        return Err(ScoreError::invalid(
            "shape",
            format!("{shape:?} does not hold {} values", data.len()),
        ));
    }
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for &s in shape {
        out.extend((s as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    score_core::fs::write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs-idx3-ubyte");
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        write_idx(&p, &[2, 3, 4], &data).unwrap();
        let a = read_idx(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, data);

        // Truncate the body: the error names the file and the field.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(
            msg.contains("imgs-idx3-ubyte") && msg.contains("truncated"),
            "{msg}"
        );

        // Bad magic.
        std::fs::write(&p, [1u8, 0, 8, 1, 0, 0, 0, 1, 7]).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains("magic"), "{msg}");

        // A corrupt gzip stream.
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(
            msg.contains("imgs-idx3-ubyte") && msg.contains("gzip"),
            "{msg}"
        );

        // A missing file.
        let msg = read_idx(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(msg.contains("nope"), "{msg}");
    }
}
