//! NumPy `.npy` files (format versions 1.0 and 2.0, little-endian, C order) for arrays
//! and samples. Reads `f4`, `f8`, `u1`, `i4` and `i8` into `f64`; writes `f4` or `f8`.

use std::path::Path;

use score_core::error::{Result, ScoreError};

/// An array read from or written to `.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major, as float64.
    pub data: Vec<f64>,
}

impl NpyArray {
    /// The array as `[rows, cols]`, flattening every axis after the first.
    pub fn as_matrix(&self) -> (usize, usize) {
        let rows = self.shape.first().copied().unwrap_or(1);
        (rows, self.data.len().checked_div(rows).unwrap_or(0))
    }
}

impl NpyArray {
    /// An error naming `path` and the position of the first NaN or infinite value.
    pub fn require_finite(&self, path: &Path) -> Result<()> {
        let Some(i) = self.data.iter().position(|v| !v.is_finite()) else {
            return Ok(());
        };
        let (rows, cols) = self.as_matrix();
        let place = if self.shape.len() >= 2 && cols > 0 && rows > 0 {
            format!("row {}, column {}", i / cols, i % cols)
        } else {
            format!("index {i}")
        };
        Err(ScoreError::format(
            path,
            "NPY",
            format!("data: non-finite value {} at {place}", self.data[i]),
        ))
    }

    /// The array as `n` rows of `d` values: the shape must be `[n, …]` with n ≥ 1 and
    /// the trailing axes holding exactly `d` values (`[n, d]`, or `[n, c, h, w]` with
    /// c·h·w = d). Returns n.
    pub fn rows_of(&self, path: &Path, d: usize) -> Result<usize> {
        let trailing: usize = self.shape.iter().skip(1).product();
        if self.shape.len() < 2 || trailing != d || self.shape[0] == 0 {
            return Err(ScoreError::format(
                path,
                "NPY",
                format!(
                    "shape: {:?} is not [n, …] with n ≥ 1 rows of dimension {d}",
                    self.shape
                ),
            ));
        }
        Ok(self.shape[0])
    }

    /// The array as a matrix `[n, d]` with n, d ≥ 1: any other rank is an error (no
    /// silent reshaping).
    pub fn matrix(&self, path: &Path) -> Result<(usize, usize)> {
        match self.shape[..] {
            [n, d] if n > 0 && d > 0 => Ok((n, d)),
            _ => Err(ScoreError::format(
                path,
                "NPY",
                format!(
                    "shape: expected a matrix [n, d] with n, d ≥ 1, got {:?}",
                    self.shape
                ),
            )),
        }
    }
}

/// Read a `.npy` file of input data: like [`read_npy`], and every value must be finite
/// (the error names the file, row and column).
pub fn read_npy_finite(path: &Path) -> Result<NpyArray> {
    let a = read_npy(path)?;
    a.require_finite(path)?;
    Ok(a)
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header.find(&format!("'{key}'"))?;
    let rest = &header[pos + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

/// Read a `.npy` file into float64.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = score_core::fs::read_file(path)?;
    parse_npy(&bytes).map_err(|d| ScoreError::format(path, "NPY", d))
}

/// Parse `.npy` bytes; the error string names the field that is wrong.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    let (header, body) = split_header(bytes)?;
    let descr = field(header, "descr").ok_or("header: no 'descr'")?;
    let descr = descr
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"'])
        .next()
        .unwrap_or("");
    if field(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("fortran_order: Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into());
    }
    let shape = parse_shape(field(header, "shape").ok_or("header: no 'shape'")?)?;
    let width = match descr {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        "|u1" | "<u1" => 1,
        other => {
            return Err(format!(
                "descr: dtype '{other}' is not one of <f4, <f8, <i4, <i8, |u1"
            ));
        }
    };
    // Checked: a header may claim a shape such as (2^32, 2^32) whose size overflows.
    let needed = shape
        .iter()
        .try_fold(width, |a: usize, &b| a.checked_mul(b))
        .ok_or_else(|| format!("shape: {shape:?} of {descr} is too large to address"))?;
    if body.len() != needed {
        return Err(format!(
            "data: shape {shape:?} of {descr} needs {needed} bytes, file has {}",
            body.len()
        ));
    }
    Ok(NpyArray {
        shape,
        data: decode_body(descr, body),
    })
}

/// The header text and the data bytes after it (format versions 1, 2 and 3).
fn split_header(bytes: &[u8]) -> std::result::Result<(&str, &[u8]), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("magic: file does not start with \\x93NUMPY".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
            12,
        ),
        v => return Err(format!("version: unsupported format version {v}")),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or("header: truncated")?)
        .map_err(|_| "header: not UTF-8".to_string())?;
    Ok((header, &bytes[start + hlen..]))
}

/// The dimensions of a header's `shape` tuple, `(2, 3)` or `(5,)` or `()`.
fn parse_shape(shape: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("shape: '{s}' is not a dimension"))
        })
        .collect()
}

/// The values of a checked body as f64.
fn decode_body(descr: &str, body: &[u8]) -> Vec<f64> {
    match descr {
        "<f4" => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")) as f64)
            .collect(),
        "<f8" => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
            .collect(),
        "<i4" => body
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4")) as f64)
            .collect(),
        "<i8" => body
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8")) as f64)
            .collect(),
        _ => body.iter().map(|&b| b as f64).collect(),
    }
}

fn encode(shape: &[usize], descr: &str, body: Vec<u8>) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(body);
    out
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    if score_core::limits::element_count("shape", shape)? != len {
        return Err(ScoreError::invalid(
            "shape",
            format!("{shape:?} does not hold {len} values"),
        ));
    }
    Ok(())
}

/// The bytes of a float32 `.npy` file.
pub fn npy_f32_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    check_len(shape, data.len())?;
    Ok(encode(
        shape,
        "<f4",
        data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    ))
}

/// Write a float32 `.npy` file (atomically).
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    score_core::fs::write_atomic(path, &npy_f32_bytes(shape, data)?)
}

/// Write a float64 `.npy` file (atomically).
pub fn write_npy_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    score_core::fs::write_atomic(path, &npy_f64_bytes(shape, data)?)
}

/// The bytes of an `.npy` file holding `data` (float64) with `shape`.
pub fn npy_f64_bytes(shape: &[usize], data: &[f64]) -> Result<Vec<u8>> {
    check_len(shape, data.len())?;
    let body = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(encode(shape, "<f8", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &[2, 3], &[1.0, 2.0, 3.5, -1.0, 0.0, 7.25]).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.5, -1.0, 0.0, 7.25]);
        // Header plus magic is a multiple of 64 bytes, as NumPy requires.
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0);
        write_npy_f64(&p, &[4], &[0.1, 0.2, 0.3, 1e-300]).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, vec![0.1, 0.2, 0.3, 1e-300]);
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let msg = read_npy(&p).unwrap_err().to_string();
        assert!(msg.contains("a.npy") && msg.contains("data"), "{msg}");
    }

    #[test]
    fn huge_shapes_nan_and_wrong_ranks_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.npy");
        // A header claiming (2^32, 2^32) float64 values: the byte count overflows usize.
        let header =
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let msg = read_npy(&p).unwrap_err().to_string();
        assert!(msg.contains("h.npy") && msg.contains("shape"), "{msg}");

        write_npy_f64(&p, &[2, 2], &[0.0, 1.0, f64::NAN, 3.0]).unwrap();
        let msg = read_npy_finite(&p).unwrap_err().to_string();
        assert!(
            msg.contains("h.npy") && msg.contains("row 1, column 0"),
            "{msg}"
        );

        write_npy_f64(&p, &[2, 2, 2], &[0.0; 8]).unwrap();
        let a = read_npy(&p).unwrap();
        assert!(a.matrix(&p).is_err());
        assert_eq!(a.rows_of(&p, 4).unwrap(), 2);
        let msg = a.rows_of(&p, 2).unwrap_err().to_string();
        assert!(
            msg.contains("[2, 2, 2]") && msg.contains("dimension 2"),
            "{msg}"
        );
    }
}
