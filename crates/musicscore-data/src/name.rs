//! IMSLP page file names: `IMSLP<file id>_<page>.jpg`.
//!
//! In MusicScore every image is one page of one IMSLP PDF. The file id is IMSLP's id of
//! the PDF (`IMSLP913207`), the page is counted from 1 in that PDF; gaps are pages that
//! the dataset's pipeline removed (covers, prefaces).

use std::fmt;

use crate::error::{MusicScoreError, Result};

/// A parsed page file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageName {
    /// IMSLP file id (of the PDF).
    pub file_id: u64,
    /// Page number within the PDF, from 1.
    pub page: u32,
}

impl fmt::Display for PageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IMSLP{}_{}", self.file_id, self.page)
    }
}

/// Image extensions accepted for pages (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

fn bad(name: &str, message: impl Into<String>) -> MusicScoreError {
    MusicScoreError::FileName {
        name: name.to_string(),
        message: message.into(),
    }
}

/// The last path component of `path` (either separator).
pub fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// True when the name ends in one of [`IMAGE_EXTENSIONS`].
pub fn has_image_extension(name: &str) -> bool {
    match base_name(name).rsplit_once('.') {
        Some((_, ext)) => IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)),
        None => false,
    }
}

fn parse_digits<T: std::str::FromStr>(name: &str, what: &str, s: &str) -> Result<T> {
    if s.is_empty() {
        return Err(bad(name, format!("missing {what}")));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(name, format!("{what} '{s}' is not a decimal number")));
    }
    s.parse()
        .map_err(|_| bad(name, format!("{what} '{s}' is out of range")))
}

/// `s` without a leading case-insensitive `IMSLP`, or `None`. (`get` keeps a multi-byte
/// character at byte 5 from panicking.)
fn strip_imslp(s: &str) -> Option<&str> {
    s.get(..5)
        .filter(|p| p.eq_ignore_ascii_case("imslp"))
        .map(|_| &s[5..])
}

/// Parse an IMSLP file id written as `IMSLP913207`, `imslp913207` or `913207`.
pub fn parse_file_id(s: &str) -> Result<u64> {
    let t = s.trim();
    parse_digits(s, "IMSLP file id", strip_imslp(t).unwrap_or(t))
}

/// Parse a page file name such as `IMSLP913207_11.jpg`; a leading folder (either
/// separator) is ignored, the `IMSLP` prefix and the extension are case-insensitive.
/// Page 0 is rejected: IMSLP pages count from 1.
pub fn parse_page_name(path: &str) -> Result<PageName> {
    let name = base_name(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return Err(bad(path, "no file extension"));
    };
    if !IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)) {
        return Err(bad(
            path,
            format!("extension '.{ext}' is not jpg, jpeg or png"),
        ));
    }
    parse_page_stem(path, stem)
}

/// Parse `IMSLP913207_11` (no extension).
pub fn parse_page_key(key: &str) -> Result<PageName> {
    parse_page_stem(key, key.trim())
}

fn parse_page_stem(orig: &str, stem: &str) -> Result<PageName> {
    let Some(rest) = strip_imslp(stem) else {
        return Err(bad(orig, "does not start with 'IMSLP'"));
    };
    let Some((id, page)) = rest.split_once('_') else {
        return Err(bad(orig, "no '_' between file id and page"));
    };
    let file_id = parse_digits(orig, "IMSLP file id", id)?;
    let page: u32 = parse_digits(orig, "page number", page)?;
    if page == 0 {
        return Err(bad(orig, "page number 0 (IMSLP pages count from 1)"));
    }
    Ok(PageName { file_id, page })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_published_names() {
        let p = parse_page_name("IMSLP913207_11.jpg").unwrap();
        assert_eq!((p.file_id, p.page), (913207, 11));
        assert_eq!(p.to_string(), "IMSLP913207_11");
        let p = parse_page_name("train/imslp00042_3.JPEG").unwrap();
        assert_eq!((p.file_id, p.page), (42, 3));
        assert_eq!(parse_file_id("IMSLP913207").unwrap(), 913207);
        assert_eq!(parse_file_id(" 77 ").unwrap(), 77);
    }

    #[test]
    fn rejects_malformed_names_with_reasons() {
        for (name, why) in [
            ("IMSLP913207.jpg", "no '_'"),
            ("IMSLP_3.jpg", "missing IMSLP file id"),
            ("IMSLP12_.jpg", "missing page number"),
            ("IMSLP12_0.jpg", "page number 0"),
            ("IMSLP12_3.pdf", "extension"),
            ("IMSLP12_3", "no file extension"),
            ("scan12_3.jpg", "does not start"),
            ("IMSLP1x_3.jpg", "not a decimal"),
            ("IMSLP99999999999999999999999_3.jpg", "out of range"),
            ("IMSLP12_+3.jpg", "not a decimal"),
            ("IMSLP12_3_4.jpg", "not a decimal"),
        ] {
            let e = parse_page_name(name).unwrap_err().to_string();
            assert!(e.contains(why), "{name}: {e}");
            assert!(e.contains(name), "{name}: {e}");
        }
    }
}
