//! Prompt templates and caption dropout.
//!
//! The paper (Dai et al. 2024, §4) captions pages as "a music score, instrumentation is
//! violin, key is A major" and "a music score of piano", and trains with empty prompts
//! for classifier-free guidance. A [`Template`] is text with `{field}` placeholders and
//! optional `[ … ]` clauses: a clause is dropped when any placeholder inside it has no
//! value, so a page without a key gets "a music score, instrumentation is piano". A
//! placeholder outside a clause with no value renders as nothing. `\[`, `\]`, `\{`,
//! `\}` and `\\` are literal.
//!
//! Fields: `title composer opus key instrumentation style period year genres genre`
//! (see [`crate::metadata::Fields`]) and `id page file_name` from the file name.

use crate::error::{MusicScoreError, Result};
use crate::metadata::Fields;
use crate::name::PageName;

/// The paper's form: "a music score, instrumentation is …, key is …".
pub const PAPER_TEMPLATE: &str =
    "a music score[, instrumentation is {instrumentation}][, key is {key}]";

/// Named templates: `paper` (the default), `of` ("a music score of piano"), `full`.
pub const PRESETS: [(&str, &str); 3] = [
    ("paper", PAPER_TEMPLATE),
    ("of", "a music score[ of {instrumentation}]"),
    (
        "full",
        "a music score[ of {title}][ by {composer}][, {style}][, instrumentation is {instrumentation}][, key is {key}]",
    ),
];

/// Placeholder names a template may use.
pub const FIELDS: [&str; 13] = [
    "title",
    "composer",
    "opus",
    "key",
    "instrumentation",
    "style",
    "period",
    "year",
    "genres",
    "genre",
    "id",
    "page",
    "file_name",
];

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(String),
    Clause(Vec<Part>),
}

/// A parsed prompt template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// The field name of a placeholder whose `{` is at byte `pos`, read up to its `}`; an
/// error is (byte, message).
fn read_placeholder(
    chars: &mut impl Iterator<Item = (usize, char)>,
    pos: usize,
) -> std::result::Result<String, (usize, String)> {
    let mut name = String::new();
    loop {
        match chars.next() {
            Some((_, '}')) => break,
            Some((p, '{' | '[' | ']')) => {
                return Err((p, format!("unexpected character in placeholder '{{{name}'")));
            }
            Some((_, ch)) => name.push(ch),
            None => return Err((pos, format!("unclosed placeholder '{{{name}'"))),
        }
    }
    let name = name.trim().to_string();
    if !FIELDS.contains(&name.as_str()) {
        return Err((
            pos,
            format!("unknown field '{{{name}}}' (known: {})", FIELDS.join(", ")),
        ));
    }
    Ok(name)
}

impl Template {
    /// Parse a template, or look up a preset name (`paper`, `of`, `full`).
    pub fn parse(s: &str) -> Result<Template> {
        if let Some((_, t)) = PRESETS.iter().find(|(n, _)| *n == s) {
            return Template::parse(t);
        }
        let err = |pos: usize, message: String| MusicScoreError::Template {
            template: s.to_string(),
            message: format!("at byte {pos}: {message}"),
        };
        let mut stack: Vec<Vec<Part>> = vec![Vec::new()];
        let mut text = String::new();
        let mut chars = s.char_indices().peekable();
        let flush = |text: &mut String, stack: &mut Vec<Vec<Part>>| {
            if !text.is_empty()
                && let Some(top) = stack.last_mut()
            {
                top.push(Part::Text(std::mem::take(text)));
            }
        };
        while let Some((pos, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('[' | ']' | '{' | '}' | '\\'))) => text.push(e),
                    Some((_, e)) => return Err(err(pos, format!("unknown escape '\\{e}'"))),
                    None => return Err(err(pos, "dangling '\\' at the end".into())),
                },
                '{' => {
                    flush(&mut text, &mut stack);
                    let name = read_placeholder(&mut chars, pos).map_err(|(p, m)| err(p, m))?;
                    if let Some(top) = stack.last_mut() {
                        top.push(Part::Field(name));
                    }
                }
                '}' => return Err(err(pos, "'}' without '{'".into())),
                '[' => {
                    if stack.len() > 1 {
                        return Err(err(pos, "clauses do not nest".into()));
                    }
                    flush(&mut text, &mut stack);
                    stack.push(Vec::new());
                }
                ']' => {
                    if stack.len() < 2 {
                        return Err(err(pos, "']' without '['".into()));
                    }
                    flush(&mut text, &mut stack);
                    let clause = stack.pop().unwrap_or_default();
                    if let Some(top) = stack.last_mut() {
                        top.push(Part::Clause(clause));
                    }
                }
                _ => text.push(c),
            }
        }
        if stack.len() > 1 {
            return Err(err(s.len(), "unclosed '['".into()));
        }
        flush(&mut text, &mut stack);
        Ok(Template {
            source: s.to_string(),
            parts: stack.pop().unwrap_or_default(),
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render for a page.
    pub fn render(&self, fields: &Fields, name: Option<&PageName>) -> String {
        let value = |f: &str| -> Option<String> {
            match f {
                "id" => name.map(|n| format!("IMSLP{}", n.file_id)),
                "page" => name.map(|n| n.page.to_string()),
                "file_name" => name.map(|n| n.to_string()),
                _ => fields.get(f),
            }
        };
        fn go(parts: &[Part], value: &dyn Fn(&str) -> Option<String>, out: &mut String) -> bool {
            for p in parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Field(f) => match value(f) {
                        Some(v) => out.push_str(&v),
                        None => return false,
                    },
                    Part::Clause(c) => {
                        let mut s = String::new();
                        if go(c, value, &mut s) {
                            out.push_str(&s);
                        }
                    }
                }
            }
            true
        }
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Field(f) => out.push_str(&value(f).unwrap_or_default()),
                other => {
                    go(std::slice::from_ref(other), &value, &mut out);
                }
            }
        }
        out
    }
}

/// One placeholder or literal of a template with its clauses decided.
#[derive(Debug, Clone, Copy)]
enum Flat<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// Match `s` against `seq`: literals exactly, each field the shortest non-empty text
/// that lets the rest match.
fn match_flat<'a>(seq: &[Flat<'a>], s: &str, out: &mut Vec<(&'a str, String)>) -> bool {
    let Some((first, rest)) = seq.split_first() else {
        return s.is_empty();
    };
    match *first {
        Flat::Text(t) => s.strip_prefix(t).is_some_and(|r| match_flat(rest, r, out)),
        Flat::Field(f) => {
            for (end, ch) in s.char_indices() {
                let end = end + ch.len_utf8();
                out.push((f, s[..end].to_string()));
                if match_flat(rest, &s[end..], out) {
                    return true;
                }
                out.pop();
            }
            false
        }
    }
}

impl Template {
    /// The placeholders the template uses, in order, each once.
    pub fn fields(&self) -> Vec<String> {
        fn go(parts: &[Part], out: &mut Vec<String>) {
            for p in parts {
                match p {
                    Part::Field(f) if !out.contains(f) => out.push(f.clone()),
                    Part::Clause(c) => go(c, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        go(&self.parts, &mut out);
        out
    }

    /// The field values `prompt` was rendered with, if [`Template::render`] could have
    /// produced it: literals match exactly, each placeholder takes the shortest
    /// non-empty text that lets the rest match, and clauses are kept where possible
    /// (the variant with the most clauses present is tried first). `None` when no
    /// variant matches.
    pub fn fields_of(&self, prompt: &str) -> Option<Vec<(String, String)>> {
        let clauses = self
            .parts
            .iter()
            .filter(|p| matches!(p, Part::Clause(_)))
            .count()
            .min(12);
        let mut variants: Vec<u32> = (0..1u32 << clauses).collect();
        variants.sort_by_key(|v| std::cmp::Reverse(v.count_ones()));
        for mask in variants {
            let mut seq = Vec::new();
            let mut k = 0;
            for p in &self.parts {
                match p {
                    Part::Text(t) => seq.push(Flat::Text(t)),
                    Part::Field(f) => seq.push(Flat::Field(f)),
                    Part::Clause(c) => {
                        if mask & (1 << k) != 0 {
                            seq.extend(c.iter().filter_map(|q| match q {
                                Part::Text(t) => Some(Flat::Text(t.as_str())),
                                Part::Field(f) => Some(Flat::Field(f.as_str())),
                                Part::Clause(_) => None,
                            }));
                        }
                        k += 1;
                    }
                }
            }
            let mut out = Vec::new();
            if match_flat(&seq, prompt, &mut out) {
                return Some(out.into_iter().map(|(f, v)| (f.to_string(), v)).collect());
            }
        }
        None
    }
}

impl Default for Template {
    fn default() -> Self {
        // The paper template is a constant that parses.
        Template::parse(PAPER_TEMPLATE).unwrap_or(Template {
            source: String::new(),
            parts: Vec::new(),
        })
    }
}

/// A template with seeded caption dropout.
#[derive(Debug, Clone)]
pub struct Captioner {
    /// The template.
    pub template: Template,
    /// Probability of the empty prompt (classifier-free guidance training; the paper
    /// fine-tunes Stable Diffusion, which uses 0.1).
    pub dropout: f64,
    /// Seed of the dropout draws.
    pub seed: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform draw in `[0, 1)` that depends only on `(seed, a, b)`.
pub fn unit_hash(seed: u64, a: u64, b: u64) -> f64 {
    let h = splitmix(splitmix(splitmix(seed) ^ a) ^ b);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Captioner {
    /// The paper's template, no dropout.
    pub fn default_paper() -> Self {
        Captioner::new(Template::default())
    }

    /// No dropout.
    pub fn new(template: Template) -> Self {
        Captioner {
            template,
            dropout: 0.0,
            seed: 0,
        }
    }

    /// The prompt of item `index` in `epoch`: empty with probability `dropout`, the
    /// same for the same `(seed, epoch, index)`.
    pub fn caption(
        &self,
        fields: &Fields,
        name: Option<&PageName>,
        index: u64,
        epoch: u64,
    ) -> String {
        if self.dropout > 0.0 && unit_hash(self.seed, epoch, index) < self.dropout {
            String::new()
        } else {
            self.template.render(fields, name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(instr: &[&str], key: Option<&str>) -> Fields {
        Fields {
            instrumentation: instr.iter().map(|s| s.to_string()).collect(),
            key: key.map(str::to_string),
            ..Fields::default()
        }
    }

    #[test]
    fn fields_of_inverts_render() {
        let t = Template::default();
        assert_eq!(t.fields(), ["instrumentation", "key"]);
        for (instr, key) in [
            (&["2 violins", "viola", "cello"][..], Some("C major")),
            (&["violin"][..], Some("B-flat major")),
            (&["piano"][..], None),
        ] {
            let f = fields(instr, key);
            let prompt = t.render(&f, None);
            let mut want = vec![("instrumentation".to_string(), instr.join(", "))];
            want.extend(key.map(|k| ("key".to_string(), k.to_string())));
            assert_eq!(t.fields_of(&prompt), Some(want), "{prompt}");
        }
        assert_eq!(t.fields_of("a music score"), Some(vec![]));
        assert_eq!(t.fields_of("a score of cello music"), None);
        assert_eq!(t.fields_of("a music score, instrumentation is "), None);
    }

    #[test]
    fn paper_template_drops_missing_clauses() {
        let t = Template::default();
        assert_eq!(
            t.render(&fields(&["violin"], Some("A major")), None),
            "a music score, instrumentation is violin, key is A major"
        );
        assert_eq!(
            t.render(&fields(&["piano"], None), None),
            "a music score, instrumentation is piano"
        );
        assert_eq!(t.render(&fields(&[], None), None), "a music score");
        let of = Template::parse("of").unwrap();
        assert_eq!(
            of.render(&fields(&["piano"], None), None),
            "a music score of piano"
        );
        let user = Template::parse("{composer}: \\[{id} p.{page}\\][ in {key}]").unwrap();
        let n = PageName {
            file_id: 7,
            page: 2,
        };
        assert_eq!(user.render(&fields(&[], None), Some(&n)), ": [IMSLP7 p.2]");
    }

    #[test]
    fn bad_templates_say_where() {
        for (t, why) in [
            ("a {nope}", "unknown field"),
            ("a {key", "unclosed placeholder"),
            ("a [b [c]]", "do not nest"),
            ("a ]", "without '['"),
            ("a [b", "unclosed '['"),
            ("a }", "without '{'"),
            ("a \\q", "unknown escape"),
        ] {
            let e = Template::parse(t).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("at byte"), "{t}: {e}");
        }
    }

    #[test]
    fn dropout_rate_and_determinism() {
        let c = Captioner {
            template: Template::default(),
            dropout: 0.1,
            seed: 3,
        };
        let f = fields(&["piano"], None);
        let n = 20_000;
        let empty = (0..n)
            .filter(|&i| c.caption(&f, None, i, 0).is_empty())
            .count();
        // Binomial(20 000, 0.1): sd = 42.4; allow 5 sd.
        assert!((empty as f64 - 2000.0).abs() < 5.0 * 42.43, "{empty}");
        assert_eq!(c.caption(&f, None, 17, 4), c.caption(&f, None, 17, 4));
        let epochs_differ =
            (0..200).any(|i| c.caption(&f, None, i, 0) != c.caption(&f, None, i, 1));
        assert!(epochs_differ);
    }
}
