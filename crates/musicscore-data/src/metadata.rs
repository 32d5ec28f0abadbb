//! `metadata.json`: shape detection, IMSLP labels, normalised fields.
//!
//! The dataset stores each work's IMSLP "General Information" as a map from IMSLP's
//! labels to strings. The labels are kept as scraped, so several carry the long and the
//! short form run together (`"Opus/Catalogue NumberOp./Cat. No."`). The top-level shape
//! of the file is not documented and has changed between releases, so
//! [`parse_metadata`] detects it:
//!
//! - an object keyed by page file name (`"IMSLP913207_11.jpg": {…}`) or page key,
//! - an object keyed by IMSLP file id (`"IMSLP913207": {…}` or `"913207": {…}`),
//! - a list of records, bare or under one wrapper key (`{"data": [...]}`), each naming
//!   its page or file in an id field (`id`, `imslp_id`, `file_id`, `file_name`, `image`),
//! - JSON Lines, one record per line.
//!
//! Values are strings in the dataset; numbers and booleans are turned into strings,
//! lists are joined with `;`, nulls are dropped, and nested objects are kept as JSON
//! text; each such oddity is counted in [`Metadata::issues`]. Records that cannot be tied
//! to a page or a file are kept and reported, never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{MusicScoreError, Result};
use crate::name::{PageName, has_image_extension, parse_file_id, parse_page_key, parse_page_name};

/// File names under which the published releases store metadata, in the order tried.
pub const METADATA_FILE_NAMES: [&str; 3] =
    ["metadata.json", "hd_data_14k.json", "hd_data_old.json"];

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordTarget {
    /// One page.
    Page {
        /// IMSLP file id.
        file_id: u64,
        /// Page number.
        page: u32,
    },
    /// Every page of one IMSLP file (PDF).
    File {
        /// IMSLP file id.
        file_id: u64,
    },
    /// Nothing recognisable: the key or id field is not an IMSLP id.
    Unknown,
}

impl RecordTarget {
    /// The IMSLP file id, when known.
    pub fn file_id(&self) -> Option<u64> {
        match self {
            RecordTarget::Page { file_id, .. } | RecordTarget::File { file_id } => Some(*file_id),
            RecordTarget::Unknown => None,
        }
    }
}

/// The detected top-level shape of a metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetadataShape {
    /// A JSON object whose keys name pages or files.
    Keyed {
        /// Keys that are page file names or page keys.
        page_keys: usize,
        /// Keys that are IMSLP file ids.
        file_keys: usize,
        /// Keys that are neither.
        other_keys: usize,
    },
    /// A JSON array of records, possibly under one wrapper key.
    List {
        /// The wrapper key, if any.
        wrapper: Option<String>,
        /// The id field found in the records (the most common one).
        id_field: Option<String>,
    },
    /// One JSON object per line.
    JsonLines {
        /// The id field found in the records.
        id_field: Option<String>,
    },
}

impl std::fmt::Display for MetadataShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataShape::Keyed {
                page_keys,
                file_keys,
                other_keys,
            } => write!(
                f,
                "object keyed by id ({page_keys} page keys, {file_keys} file keys, {other_keys} other)"
            ),
            MetadataShape::List { wrapper, id_field } => write!(
                f,
                "list of records{}{}",
                wrapper
                    .as_ref()
                    .map(|w| format!(" under '{w}'"))
                    .unwrap_or_default(),
                id_field
                    .as_ref()
                    .map(|k| format!(", id field '{k}'"))
                    .unwrap_or_default()
            ),
            MetadataShape::JsonLines { id_field } => write!(
                f,
                "JSON Lines{}",
                id_field
                    .as_ref()
                    .map(|k| format!(", id field '{k}'"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Tidy fields read from IMSLP's labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fields {
    /// Work title.
    pub title: Option<String>,
    /// Composer as "First Last" (IMSLP writes "Last, First").
    pub composer: Option<String>,
    /// Opus / catalogue number.
    pub opus: Option<String>,
    /// Key, as "A-flat major" / "C-sharp minor" where it parses, else as written.
    pub key: Option<String>,
    /// Instruments, lower case, in IMSLP's order.
    pub instrumentation: Vec<String>,
    /// Piece style (Baroque, Classical, Romantic, …).
    pub style: Option<String>,
    /// Composer time period.
    pub period: Option<String>,
    /// First year in the composition date.
    pub year: Option<i32>,
    /// Genre categories.
    pub genres: Vec<String>,
}

/// One metadata record: where it points, its raw map, its tidy fields.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The key (keyed shape) or id value (list shapes) as written.
    pub key: String,
    /// What it describes.
    pub target: RecordTarget,
    /// Every label and value, as strings.
    pub raw: BTreeMap<String, String>,
    /// Normalised fields.
    pub fields: Fields,
}

/// A parsed metadata file.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// The file it came from.
    pub path: PathBuf,
    /// The detected shape.
    pub shape: MetadataShape,
    /// Records in file order.
    pub records: Vec<Record>,
    /// Oddities met while reading (non-string values, records without id, …).
    pub issues: Vec<String>,
}

/// Find the metadata file of a layout folder (`metadata.json` or an older name).
pub fn find_metadata_file(dir: &Path) -> Option<PathBuf> {
    METADATA_FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Read and parse a metadata file.
pub fn load_metadata(path: &Path) -> Result<Metadata> {
    let bytes = score_core::fs::read_file(path)?;
    parse_metadata(&bytes, path)
}

/// Lower-case ASCII letters and digits only: the form labels are compared in.
fn label_norm(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Label forms of each tidy field, normalised with [`label_norm`], most specific first.
const LABELS: [(&str, &[&str]); 9] = [
    ("title", &["worktitle", "title", "name"]),
    ("composer", &["composer", "composers"]),
    (
        "opus",
        &[
            "opuscataloguenumberopcatno",
            "opuscataloguenumber",
            "opcatno",
            "opus",
            "catalogue",
        ],
    ),
    ("key", &["key", "tonality"]),
    (
        "instrumentation",
        &["instrumentation", "instruments", "instrument"],
    ),
    ("style", &["piecestyle", "style"]),
    (
        "period",
        &[
            "composertimeperiodcompperiod",
            "composertimeperiod",
            "compperiod",
            "period",
        ],
    ),
    (
        "year",
        &[
            "yeardateofcompositionydofcomp",
            "yeardateofcomposition",
            "ydofcomp",
            "dateofcomposition",
            "year",
        ],
    ),
    ("genres", &["genrecategories", "genres", "genre", "tags"]),
];

/// Id fields of list-shaped records, normalised.
const ID_FIELDS: [&str; 9] = [
    "id",
    "imslpid",
    "imslp",
    "fileid",
    "filename",
    "image",
    "imagename",
    "file",
    "page",
];

fn tidy(s: &str) -> Option<String> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() || t == "-" {
        None
    } else {
        Some(t)
    }
}

/// "Bach, Johann Sebastian" → "Johann Sebastian Bach". Names without a comma are kept;
/// with several composers (`;`) only the first is used.
pub fn normalize_composer(s: &str) -> Option<String> {
    let first = s.split(';').next().unwrap_or("");
    let t = tidy(first)?;
    match t.split_once(',') {
        Some((last, given)) => {
            let (last, given) = (last.trim(), given.trim());
            if given.is_empty() {
                Some(last.to_string())
            } else if last.is_empty() {
                Some(given.to_string())
            } else {
                Some(format!("{given} {last}"))
            }
        }
        None => Some(t),
    }
}

/// Keys as "A-flat major": the tonic letter upper case, the accidental as `-flat` /
/// `-sharp` (from `b`, `#`, `♭`, `♯`, ` flat`, ` sharp`), the mode lower case. Anything
/// else (modes, "Various") is kept as written.
pub fn normalize_key(s: &str) -> Option<String> {
    let t = tidy(s)?;
    let mut chars = t.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    if !('A'..='G').contains(&letter) {
        return Some(t);
    }
    let rest: String = chars.collect();
    let lower = rest.to_lowercase();
    let (acc, after) = if let Some(r) = lower.strip_prefix("-flat").or(lower.strip_prefix(" flat"))
    {
        ("-flat", r)
    } else if let Some(r) = lower
        .strip_prefix("-sharp")
        .or(lower.strip_prefix(" sharp"))
    {
        ("-sharp", r)
    } else if let Some(r) = lower.strip_prefix('♭').or(lower.strip_prefix('b')) {
        ("-flat", r)
    } else if let Some(r) = lower.strip_prefix('♯').or(lower.strip_prefix('#')) {
        ("-sharp", r)
    } else {
        ("", lower.as_str())
    };
    let mode = after.trim();
    if mode.is_empty() || mode == "major" || mode == "minor" {
        let mode = if mode.is_empty() { "major" } else { mode };
        Some(format!("{letter}{acc} {mode}"))
    } else {
        Some(t)
    }
}

/// The first plausible year (1000–2099) in a date string: "1829-30" → 1829,
/// "ca.1780" → 1780.
pub fn parse_year(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 4 <= b.len() {
        let w = &b[i..i + 4];
        let before = i == 0 || !b[i - 1].is_ascii_digit();
        let after = i + 4 == b.len() || !b[i + 4].is_ascii_digit();
        if before && after && w.iter().all(u8::is_ascii_digit) {
            let y: i32 = std::str::from_utf8(w).ok()?.parse().ok()?;
            if (1000..2100).contains(&y) {
                return Some(y);
            }
        }
        i += 1;
    }
    None
}

fn split_list(s: &str, seps: &[char]) -> Vec<String> {
    s.split(seps).filter_map(tidy).collect()
}

impl Fields {
    /// Read the tidy fields from a raw label map.
    pub fn from_raw(raw: &BTreeMap<String, String>) -> Fields {
        let normed: Vec<(String, &String)> = raw.iter().map(|(k, v)| (label_norm(k), v)).collect();
        let get = |field: &str| -> Option<&String> {
            let forms = LABELS.iter().find(|(f, _)| *f == field)?.1;
            forms
                .iter()
                .find_map(|form| normed.iter().find(|(k, _)| k == form).map(|(_, v)| *v))
        };
        Fields {
            title: get("title").and_then(|v| tidy(v)),
            composer: get("composer").and_then(|v| normalize_composer(v)),
            opus: get("opus").and_then(|v| tidy(v)),
            key: get("key").and_then(|v| normalize_key(v)),
            instrumentation: get("instrumentation")
                .map(|v| {
                    split_list(v, &[';', ','])
                        .into_iter()
                        .map(|s| s.to_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
            style: get("style").and_then(|v| tidy(v)),
            period: get("period").and_then(|v| tidy(v)),
            year: get("year").and_then(|v| parse_year(v)),
            genres: get("genres")
                .map(|v| split_list(v, &[';']))
                .unwrap_or_default(),
        }
    }

    /// The value of a tidy field as text (`instrumentation` and `genres` joined with
    /// ", "), or `None` when missing. Unknown names give `None`.
    pub fn get(&self, field: &str) -> Option<String> {
        let join = |v: &Vec<String>| {
            if v.is_empty() {
                None
            } else {
                Some(v.join(", "))
            }
        };
        match field {
            "title" => self.title.clone(),
            "composer" => self.composer.clone(),
            "opus" => self.opus.clone(),
            "key" => self.key.clone(),
            "instrumentation" => join(&self.instrumentation),
            "style" => self.style.clone(),
            "period" => self.period.clone(),
            "year" => self.year.map(|y| y.to_string()),
            "genres" => join(&self.genres),
            "genre" => self.genres.first().cloned(),
            _ => None,
        }
    }
}

/// Where a key or id value points.
fn target_of(s: &str) -> RecordTarget {
    let t = s.trim();
    if has_image_extension(t) {
        if let Ok(PageName { file_id, page }) = parse_page_name(t) {
            return RecordTarget::Page { file_id, page };
        }
    } else if let Ok(PageName { file_id, page }) = parse_page_key(t) {
        return RecordTarget::Page { file_id, page };
    } else if let Ok(file_id) = parse_file_id(t) {
        return RecordTarget::File { file_id };
    }
    RecordTarget::Unknown
}

fn value_text(v: &Value, label: &str, issues: &mut Vec<String>, ctx: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect();
            Some(parts.join(";"))
        }
        Value::Object(_) => {
            issues.push(format!(
                "{ctx}: '{label}' is a nested object; kept as JSON text"
            ));
            Some(v.to_string())
        }
    }
}

fn raw_map(
    obj: &serde_json::Map<String, Value>,
    issues: &mut Vec<String>,
    ctx: &str,
) -> BTreeMap<String, String> {
    obj.iter()
        .filter_map(|(k, v)| value_text(v, k, issues, ctx).map(|t| (k.clone(), t)))
        .collect()
}

fn record(key: String, target: RecordTarget, raw: BTreeMap<String, String>) -> Record {
    let fields = Fields::from_raw(&raw);
    Record {
        key,
        target,
        raw,
        fields,
    }
}

/// The id field of a list record: the first label whose normalised form is an id field
/// (in [`ID_FIELDS`] order).
fn id_field(obj: &serde_json::Map<String, Value>) -> Option<(&String, &Value)> {
    ID_FIELDS
        .iter()
        .find_map(|f| obj.iter().find(|(k, _)| label_norm(k) == *f))
}

/// The target of a keyed record: the key's, or the record's own id field's when the key
/// names nothing (a title), is a bare number (a running index, or a file id the record
/// repeats) or names another file (with an issue); of a page key and its own file id,
/// the page.
fn keyed_target(
    key: &str,
    key_target: RecordTarget,
    rec: &serde_json::Map<String, Value>,
    issues: &mut Vec<String>,
) -> RecordTarget {
    let own = id_field(rec).map(|(field, v)| {
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        (field.clone(), s.clone(), target_of(&s))
    });
    match (key_target, own) {
        (RecordTarget::Unknown, Some((_, _, t))) if t != RecordTarget::Unknown => t,
        (RecordTarget::Unknown, _) => {
            issues.push(format!(
                "key '{key}' is not an IMSLP page or file id, and the record has no id field that is"
            ));
            RecordTarget::Unknown
        }
        // A bare number key beside the record's own id is most likely a running index.
        (_, Some((_, _, t)))
            if t != RecordTarget::Unknown && key.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            t
        }
        (kt, Some((field, s, t))) if t != RecordTarget::Unknown && t.file_id() != kt.file_id() => {
            issues.push(format!(
                "key '{key}' and its {field} '{s}' name different IMSLP files; joined by the record's {field}"
            ));
            t
        }
        (kt @ RecordTarget::Page { .. }, _) => kt,
        (kt, Some((_, _, t @ RecordTarget::Page { .. }))) if t.file_id() == kt.file_id() => t,
        (kt, _) => kt,
    }
}

fn list_record(
    v: &Value,
    ctx: &str,
    issues: &mut Vec<String>,
    id_counts: &mut BTreeMap<String, usize>,
) -> Option<Record> {
    let Value::Object(obj) = v else {
        issues.push(format!("{ctx}: not an object ({}); skipped", json_kind(v)));
        return None;
    };
    let (key, target) = match id_field(obj) {
        Some((field, idv)) => {
            *id_counts.entry(field.clone()).or_default() += 1;
            let s = match idv {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            let t = target_of(&s);
            if t == RecordTarget::Unknown {
                issues.push(format!(
                    "{ctx}: {field} '{s}' is not an IMSLP page or file id"
                ));
            }
            (s, t)
        }
        None => {
            issues.push(format!(
                "{ctx}: no id field (id, imslp_id, file_id, file_name, image)"
            ));
            (String::new(), RecordTarget::Unknown)
        }
    };
    Some(record(key, target, raw_map(obj, issues, ctx)))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn most_common(counts: BTreeMap<String, usize>) -> Option<String> {
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(k, _)| k)
}

/// Parse metadata bytes, detecting the shape. `path` is used in messages only.
pub fn parse_metadata(bytes: &[u8], path: &Path) -> Result<Metadata> {
    let err = |message: String| MusicScoreError::Metadata {
        path: path.to_path_buf(),
        message,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        err(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(err("empty file".into()));
    }
    let mut acc = Records::default();
    let shape = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => acc.object(&obj),
        Ok(Value::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                acc.list_item(v, &format!("[{i}]"));
            }
            Ok(MetadataShape::List {
                wrapper: None,
                id_field: most_common(std::mem::take(&mut acc.id_counts)),
            })
        }
        Ok(other) => Err(format!(
            "top level is a JSON {}, expected an object, a list or JSON Lines",
            json_kind(&other)
        )),
        Err(whole) => acc.json_lines(text, &whole),
    }
    .map_err(err)?;
    Ok(Metadata {
        path: path.to_path_buf(),
        shape,
        records: acc.records,
        issues: acc.issues,
    })
}

/// The records of a metadata file as they are read, the issues met, and how often
/// each field served as a record's id.
#[derive(Default)]
struct Records {
    records: Vec<Record>,
    issues: Vec<String>,
    id_counts: BTreeMap<String, usize>,
}

impl Records {
    /// One element of a list (or one JSON line), `ctx` naming where it is.
    fn list_item(&mut self, v: &Value, ctx: &str) {
        self.records
            .extend(list_record(v, ctx, &mut self.issues, &mut self.id_counts));
    }

    /// A top-level object: a wrapped list, one JSON-Lines record, or records by key.
    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
    ) -> std::result::Result<MetadataShape, String> {
        // One array under a wrapper key, the rest scalars: a wrapped list.
        let arrays: Vec<_> = obj.iter().filter(|(_, v)| v.is_array()).collect();
        let objects = obj.values().filter(|v| v.is_object()).count();
        if arrays.len() == 1 && objects == 0 {
            let (wrapper, list) = arrays[0];
            for (i, v) in list.as_array().into_iter().flatten().enumerate() {
                self.list_item(v, &format!("{wrapper}[{i}]"));
            }
            Ok(MetadataShape::List {
                wrapper: Some(wrapper.clone()),
                id_field: most_common(std::mem::take(&mut self.id_counts)),
            })
        } else if objects == 0 && id_field(obj).is_some() {
            // One record on one line: JSON Lines with a single record.
            self.list_item(&Value::Object(obj.clone()), "line 1");
            Ok(MetadataShape::JsonLines {
                id_field: most_common(std::mem::take(&mut self.id_counts)),
            })
        } else if objects == 0 && !obj.is_empty() {
            Err(format!(
                "a JSON object whose values are not records (first key '{}' holds {})",
                obj.keys().next().map(String::as_str).unwrap_or(""),
                obj.values().next().map(json_kind).unwrap_or("nothing")
            ))
        } else {
            Ok(self.keyed(obj))
        }
    }

    /// Records by key: the key names the page or file, the value holds the fields.
    fn keyed(&mut self, obj: &serde_json::Map<String, Value>) -> MetadataShape {
        let (mut page_keys, mut file_keys, mut other_keys) = (0, 0, 0);
        for (k, v) in obj {
            let Value::Object(rec) = v else {
                self.issues.push(format!(
                    "key '{k}': {} instead of a record; skipped",
                    json_kind(v)
                ));
                continue;
            };
            let key_target = target_of(k);
            match key_target {
                RecordTarget::Page { .. } => page_keys += 1,
                RecordTarget::File { .. } => file_keys += 1,
                RecordTarget::Unknown => other_keys += 1,
            }
            let target = keyed_target(k, key_target, rec, &mut self.issues);
            let ctx = format!("key '{k}'");
            self.records.push(record(
                k.clone(),
                target,
                raw_map(rec, &mut self.issues, &ctx),
            ));
        }
        MetadataShape::Keyed {
            page_keys,
            file_keys,
            other_keys,
        }
    }

    /// JSON Lines: every non-empty line one object (`whole`: why the text is not one
    /// JSON value).
    fn json_lines(
        &mut self,
        text: &str,
        whole: &serde_json::Error,
    ) -> std::result::Result<MetadataShape, String> {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        if lines.len() < 2 {
            return Err(format!("not valid JSON: {whole}"));
        }
        for (n, line) in lines {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => self.list_item(&v, &format!("line {}", n + 1)),
                Err(e) if n == 0 => {
                    return Err(format!(
                        "not valid JSON ({whole}) nor JSON Lines (line 1: {e})"
                    ));
                }
                Err(e) => return Err(format!("JSON Lines: line {}: {e}", n + 1)),
            }
        }
        Ok(MetadataShape::JsonLines {
            id_field: most_common(std::mem::take(&mut self.id_counts)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_fields() {
        assert_eq!(
            normalize_composer("Bach, Johann Sebastian").unwrap(),
            "Johann Sebastian Bach"
        );
        assert_eq!(
            normalize_composer("Weber, Carl Maria von").unwrap(),
            "Carl Maria von Weber"
        );
        assert_eq!(normalize_composer("Traditional").unwrap(), "Traditional");
        assert_eq!(normalize_composer("  ").as_deref(), None);
        assert_eq!(normalize_key("A-flat major").unwrap(), "A-flat major");
        assert_eq!(normalize_key("a♭ minor").unwrap(), "A-flat minor");
        assert_eq!(normalize_key("F# minor").unwrap(), "F-sharp minor");
        assert_eq!(normalize_key("Bb").unwrap(), "B-flat major");
        assert_eq!(normalize_key("c sharp minor").unwrap(), "C-sharp minor");
        assert_eq!(normalize_key("Dorian").unwrap(), "Dorian");
        assert_eq!(normalize_key("D dorian").unwrap(), "D dorian");
        assert_eq!(parse_year("1829-30"), Some(1829));
        assert_eq!(parse_year("ca.1780 (rev. 1791)"), Some(1780));
        assert_eq!(parse_year("Op.12345"), None);
        assert_eq!(parse_year("n.d."), None);
    }

    #[test]
    fn detects_shapes() {
        let p = Path::new("m.json");
        let keyed = br#"{"IMSLP1_2.jpg": {"Composer": "Bach, Johann Sebastian", "Key": "D minor"},
                         "IMSLP7": {"Work Title": "X"}, "junk": {"Key": "C"}}"#;
        let m = parse_metadata(keyed, p).unwrap();
        assert_eq!(
            m.shape,
            MetadataShape::Keyed {
                page_keys: 1,
                file_keys: 1,
                other_keys: 1
            }
        );
        assert_eq!(
            m.records[0].target,
            RecordTarget::Page {
                file_id: 1,
                page: 2
            }
        );
        assert_eq!(
            m.records[0].fields.composer.as_deref(),
            Some("Johann Sebastian Bach")
        );
        assert_eq!(m.issues.len(), 1);

        let list = br#"[{"id": "IMSLP5", "Instrumentation": "2 violins, viola; cello", "Year/Date of CompositionY/D of Comp.": 1799},
                        {"Key": "C"}, 3]"#;
        let m = parse_metadata(list, p).unwrap();
        assert!(matches!(m.shape, MetadataShape::List { wrapper: None, .. }));
        assert_eq!(m.records.len(), 2);
        assert_eq!(
            m.records[0].fields.instrumentation,
            ["2 violins", "viola", "cello"]
        );
        assert_eq!(m.records[0].fields.year, Some(1799));
        assert_eq!(m.issues.len(), 2, "{:?}", m.issues);

        let wrapped = br#"{"version": 2, "data": [{"file_name": "IMSLP9_1.jpg", "Genre Categories": ["Sonatas", "For piano"]}]}"#;
        let m = parse_metadata(wrapped, p).unwrap();
        assert_eq!(
            m.shape.to_string(),
            "list of records under 'data', id field 'file_name'"
        );
        assert_eq!(m.records[0].fields.genres, ["Sonatas", "For piano"]);

        // Keyed by running numbers or titles, each record carrying its own IMSLP id: joined
        // by that id; a key and an id naming different files: the id, with an issue.
        let own = br#"{"0": {"imslp_id": "IMSLP913207", "Key": "A major"},
                        "Sonata": {"file_name": "IMSLP8_3.jpg"},
                        "IMSLP9": {"imslp_id": "IMSLP10"},
                        "IMSLP11": {"imslp_id": "IMSLP11_2.png"}}"#;
        let m = parse_metadata(own, p).unwrap();
        let target = |key: &str| m.records.iter().find(|r| r.key == key).unwrap().target;
        assert_eq!(target("0"), RecordTarget::File { file_id: 913207 });
        assert_eq!(
            target("Sonata"),
            RecordTarget::Page {
                file_id: 8,
                page: 3
            }
        );
        assert_eq!(target("IMSLP9"), RecordTarget::File { file_id: 10 });
        assert_eq!(
            target("IMSLP11"),
            RecordTarget::Page {
                file_id: 11,
                page: 2
            }
        );
        assert_eq!(m.issues.len(), 1, "{:?}", m.issues);
        assert!(m.issues[0].contains("different IMSLP files"));

        // A JSON Lines file with one record (one line) is JSON Lines, not an error.
        let one = b"{\"imslp_id\": 4, \"Key\": \"G major\"}\n";
        let m = parse_metadata(one, p).unwrap();
        assert!(matches!(m.shape, MetadataShape::JsonLines { .. }));
        assert_eq!(m.records.len(), 1);
        assert_eq!(m.records[0].target, RecordTarget::File { file_id: 4 });

        let jsonl = b"{\"imslp_id\": 4, \"Key\": \"G major\"}\n\n{\"imslp_id\": \"IMSLP5\"}\n";
        let m = parse_metadata(jsonl, p).unwrap();
        assert!(matches!(m.shape, MetadataShape::JsonLines { .. }));
        assert_eq!(m.records[0].target, RecordTarget::File { file_id: 4 });
    }

    #[test]
    fn odd_files_are_errors_with_reasons() {
        let p = Path::new("bad.json");
        for (bytes, why) in [
            (&b""[..], "empty"),
            (b"\xff\xfe{}", "UTF-8"),
            (b"42", "top level is a JSON number"),
            (b"{\"a\": 1, \"b\": 2}", "not records"),
            (b"{\"a\": {", "not valid JSON"),
            (b"{\"id\": 1}\n{\"id\": ", "line 2"),
        ] {
            let e = parse_metadata(bytes, p).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("bad.json"), "{e}");
        }
    }
}
