//! A minimal ZIP reader and writer: enough for TorchScript archives and wheels (stored
//! and deflated entries) and for `.npz` files (stored entries). No ZIP64, no
//! encryption; anything else is a format error naming the file and the entry.

use std::io::Read;
use std::path::Path;

use score_core::error::{Result, ScoreError};

/// One entry of the central directory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's name inside the archive.
    pub name: String,
    method: u16,
    compressed: usize,
    size: usize,
    local_offset: usize,
}

/// A ZIP archive held in memory.
pub struct Archive<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
    path: &'a Path,
}

/// Deflate's largest expansion (a 258-byte match coded in 2 bits at best), with room
/// for the block headers of tiny streams.
const MAX_DEFLATE_RATIO: usize = 1032;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

impl<'a> Archive<'a> {
    /// Parse the central directory of `bytes`, read from `path` (named in errors).
    pub fn new(bytes: &'a [u8], path: &'a Path) -> Result<Self> {
        let bad = |d: String| ScoreError::format(path, "ZIP", d);
        // The end-of-central-directory record is in the last 64 KiB + 22 bytes.
        let lo = bytes.len().saturating_sub(22 + 65_535);
        let eocd = (lo..bytes.len().saturating_sub(21))
            .rev()
            .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
            .ok_or_else(|| bad("no end-of-central-directory record".into()))?;
        let count = u16_at(bytes, eocd + 10).unwrap_or(0) as usize;
        let mut at = u32_at(bytes, eocd + 16).unwrap_or(usize::MAX);
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let field = |o: usize| u32_at(bytes, at + o);
            if bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x01, 0x02]) {
                return Err(bad(format!("central directory entry {i}: bad signature")));
            }
            let (method, name_len, extra, comment) = (
                u16_at(bytes, at + 10),
                u16_at(bytes, at + 28),
                u16_at(bytes, at + 30),
                u16_at(bytes, at + 32),
            );
            let (Some(method), Some(n), Some(e), Some(c)) = (method, name_len, extra, comment)
            else {
                return Err(bad(format!("central directory entry {i}: truncated")));
            };
            let name = bytes
                .get(at + 46..at + 46 + n as usize)
                .ok_or_else(|| bad(format!("central directory entry {i}: truncated name")))?;
            let (Some(compressed), Some(size), Some(local_offset)) =
                (field(20), field(24), field(42))
            else {
                return Err(bad(format!("central directory entry {i}: truncated")));
            };
            if [compressed, size, local_offset].contains(&0xffff_ffff) {
                return Err(bad(format!("entry {i}: ZIP64 is not supported")));
            }
            entries.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                method,
                compressed,
                size,
                local_offset,
            });
            at += 46 + n as usize + e as usize + c as usize;
        }
        Ok(Self {
            bytes,
            entries,
            path,
        })
    }

    /// The entries, in directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The first entry whose name ends with `suffix`.
    pub fn find(&self, suffix: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name.ends_with(suffix))
    }

    /// The uncompressed content of `entry`.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>> {
        let bad = |d: &str| ScoreError::format(self.path, "ZIP", format!("{}: {d}", entry.name));
        let at = entry.local_offset;
        if self.bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x03, 0x04]) {
            return Err(bad("bad local header signature"));
        }
        let (Some(n), Some(e)) = (u16_at(self.bytes, at + 26), u16_at(self.bytes, at + 28)) else {
            return Err(bad("truncated local header"));
        };
        let start = at + 30 + n as usize + e as usize;
        let raw = self
            .bytes
            .get(start..start + entry.compressed)
            .ok_or_else(|| bad("data run past the end of the file"))?;
        let out = match entry.method {
            0 => raw.to_vec(),
            8 => {
                // Deflate expands data at most 1032-fold: a larger declared size cannot be
                // true, and is refused before a buffer of that size is allocated.
                if entry.size > raw.len().saturating_mul(MAX_DEFLATE_RATIO) {
                    return Err(bad(&format!(
                        "the directory declares {} bytes from {} compressed, more than deflate's {MAX_DEFLATE_RATIO}:1 allows",
                        entry.size,
                        raw.len()
                    )));
                }
                score_core::limits::ensure_fits(
                    &entry.name,
                    entry.size as u128,
                    "a smaller archive",
                )?;
                let mut out = Vec::with_capacity(entry.size);
                // Never inflate past the declared size (one byte more shows a mismatch).
                flate2::read::DeflateDecoder::new(raw)
                    .take(entry.size as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|err| bad(&format!("deflate: {err}")))?;
                out
            }
            m => return Err(bad(&format!("compression method {m} is not supported"))),
        };
        if out.len() != entry.size {
            return Err(bad(&format!(
                "{} bytes after decompression, the directory says {}",
                out.len(),
                entry.size
            )));
        }
        Ok(out)
    }

    /// The content of the entry named exactly `name`, or a format error naming it.
    pub fn read_named(&self, name: &str) -> Result<Vec<u8>> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ScoreError::format(self.path, "ZIP", format!("no entry {name}")))?;
        self.read(entry)
    }
}

/// The keys of a `.npz` file (entry names without `.npy`).
pub fn npz_keys(path: &Path) -> Result<Vec<String>> {
    let bytes = score_core::fs::read_file(path)?;
    let zip = Archive::new(&bytes, path)?;
    Ok(zip
        .entries()
        .iter()
        .map(|e| e.name.trim_end_matches(".npy").to_string())
        .collect())
}

/// The image array of a `.npz` file (`numpy.savez` or `savez_compressed`): `arr_0`
/// (what `np.savez(f, x)` and ADM's and EDM's sample scripts write), else its only
/// array; anything else is an error listing the keys.
pub fn npz_image_array(path: &Path) -> Result<score_io::npy::NpyArray> {
    let bytes = score_core::fs::read_file(path)?;
    let zip = Archive::new(&bytes, path)?;
    let names: Vec<&str> = zip.entries().iter().map(|e| e.name.as_str()).collect();
    let pick = match names.as_slice() {
        [only] => only.to_string(),
        _ if names.contains(&"arr_0.npy") => "arr_0.npy".to_string(),
        _ => {
            return Err(ScoreError::format(
                path,
                "NPZ",
                format!(
                    "which array holds the images? keys {names:?}: expected arr_0 or a single array"
                ),
            ));
        }
    };
    let raw = zip.read_named(&pick)?;
    score_io::npy::parse_npy(&raw)
        .map_err(|e| ScoreError::format(path, "NPZ", format!("{pick}: {e}")))
}

/// A ZIP archive of stored (uncompressed) entries, as `numpy.savez` writes.
pub fn write_stored(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&0u32.to_le_bytes()); // time, date
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04]);
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
    let n = files.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {

    /// `npz_image_array` takes arr_0 or the only array, and names the keys otherwise.
    #[test]
    fn npz_image_arrays_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = score_io::npy::npy_f32_bytes(&[2, 1, 2, 2], &[0.0; 8]).unwrap();
        let b = score_io::npy::npy_f32_bytes(&[3], &[1.0; 3]).unwrap();
        let write = |name: &str, files: &[(&str, &[u8])]| {
            let p = dir.path().join(name);
            std::fs::write(&p, write_stored(files)).unwrap();
            p
        };
        let only = write("only.npz", &[("images.npy", &a)]);
        assert_eq!(npz_image_array(&only).unwrap().shape, vec![2, 1, 2, 2]);
        let two = write("two.npz", &[("arr_1.npy", &b), ("arr_0.npy", &a)]);
        assert_eq!(npz_image_array(&two).unwrap().shape, vec![2, 1, 2, 2]);
        let stats = write("stats.npz", &[("mu.npy", &b), ("sigma.npy", &a)]);
        let e = npz_image_array(&stats).unwrap_err().to_string();
        assert!(e.contains("mu.npy") && e.contains("arr_0"), "{e}");
        assert_eq!(npz_keys(&stats).unwrap(), vec!["mu", "sigma"]);
    }

    use super::*;

    /// A one-entry archive whose entry is `data` deflated and whose directory declares
    /// `size` uncompressed bytes.
    fn deflated(data: &[u8], size: u32) -> Vec<u8> {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, data).unwrap();
        let mut bytes = write_stored(&[("mu.npy", &z.finish().unwrap())]);
        let eocd = bytes.len() - 22;
        let cd = u32_at(&bytes, eocd + 16).unwrap();
        bytes[8..10].copy_from_slice(&8u16.to_le_bytes()); // local header: deflate
        bytes[cd + 10..cd + 12].copy_from_slice(&8u16.to_le_bytes());
        bytes[cd + 24..cd + 28].copy_from_slice(&size.to_le_bytes());
        bytes
    }

    #[test]
    fn a_declared_size_deflate_cannot_reach_is_refused_before_allocating() {
        // Fuzzing (`fuzz/fuzz_targets/npz_stats.rs`) found a 400-byte `.npz` whose
        // directory declared 4 294 967 151 bytes: the reader allocated them up front.
        let path = Path::new("t.npz");
        let honest = deflated(&[7u8; 5000], 5000);
        let z = Archive::new(&honest, path).unwrap();
        assert_eq!(z.read_named("mu.npy").unwrap(), vec![7u8; 5000]);
        let lie = deflated(&[7u8; 5000], 0xffff_ffef);
        let z = Archive::new(&lie, path).unwrap();
        let e = z.read_named("mu.npy").unwrap_err().to_string();
        assert!(e.contains("more than deflate's 1032:1 allows"), "{e}");
        // A size within the ratio but larger than the data: inflation stops one byte
        // past the data, and the mismatch is named.
        let short = deflated(&[7u8; 5000], 6000);
        let z = Archive::new(&short, path).unwrap();
        let e = z.read_named("mu.npy").unwrap_err().to_string();
        assert!(
            e.contains("5000 bytes after decompression, the directory says 6000"),
            "{e}"
        );
    }

    #[test]
    fn stored_archives_round_trip_and_truncation_is_an_error() {
        let bytes = write_stored(&[("a.npy", b"hello"), ("dir/b.npy", b"")]);
        let path = Path::new("t.zip");
        let z = Archive::new(&bytes, path).unwrap();
        assert_eq!(z.entries().len(), 2);
        assert_eq!(z.read_named("a.npy").unwrap(), b"hello");
        assert_eq!(z.read(z.find("b.npy").unwrap()).unwrap(), b"");
        assert!(
            z.read_named("c")
                .unwrap_err()
                .to_string()
                .contains("no entry c")
        );
        for cut in [0, 10, bytes.len() - 30] {
            let cut_bytes = &bytes[..cut];
            if let Ok(z) = Archive::new(cut_bytes, path) {
                for e in z.entries() {
                    let _ = z.read(e);
                }
            }
        }
    }
}
