//! What a text-to-score model was trained to follow: the values each prompt field
//! (instrumentation, key, …) took in its training prompts. A prompt whose values the
//! model never saw is refused by name (or, when the caller allows it, warned about),
//! instead of silently drawing the nearest instrumentation it knows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use musicscore_data::prompt::Template;

/// Field → value → training systems whose prompt had it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// The counts.
    pub fields: BTreeMap<String, BTreeMap<String, usize>>,
}

/// How a prompt stands against a [`Vocabulary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptCheck {
    /// Every field value was in the training prompts.
    Known,
    /// The prompt does not follow the model's template.
    OffTemplate,
    /// Field values the training prompts never had: (field, value, the known values).
    Unseen(Vec<(String, String, Vec<String>)>),
}

impl PromptCheck {
    /// A one-paragraph explanation, `None` for [`PromptCheck::Known`].
    pub fn message(&self, template: &str) -> Option<String> {
        match self {
            PromptCheck::Known => None,
            PromptCheck::OffTemplate => Some(format!(
                "the prompt does not follow the model's template '{template}', so the model never saw anything like it"
            )),
            PromptCheck::Unseen(v) => Some(
                v.iter()
                    .map(|(f, val, known)| {
                        format!(
                            "{f} '{val}' is not in the training prompts (trained on: {})",
                            known.join("; ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

impl Vocabulary {
    /// Count `prompt` (rendered from `template`) once per training system.
    pub fn add(&mut self, template: &Template, prompt: &str) {
        for (f, v) in template.fields_of(prompt).unwrap_or_default() {
            *self.fields.entry(f).or_default().entry(v).or_default() += 1;
        }
    }

    /// Check `prompt` against the vocabulary (values compared exactly, as the text
    /// encoder sees them).
    pub fn check(&self, template: &Template, prompt: &str) -> PromptCheck {
        let Some(values) = template.fields_of(prompt) else {
            return PromptCheck::OffTemplate;
        };
        let unseen: Vec<(String, String, Vec<String>)> = values
            .into_iter()
            .filter_map(|(f, v)| {
                let known = self.fields.get(&f)?;
                (!known.contains_key(&v)).then(|| (f, v, known.keys().cloned().collect()))
            })
            .collect();
        if unseen.is_empty() {
            PromptCheck::Known
        } else {
            PromptCheck::Unseen(unseen)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_values_are_named() {
        let t = Template::default();
        let mut v = Vocabulary::default();
        v.add(
            &t,
            "a music score, instrumentation is violin, key is D major",
        );
        v.add(
            &t,
            "a music score, instrumentation is piano, key is C major",
        );
        let ok = "a music score, instrumentation is piano, key is D major";
        assert_eq!(v.check(&t, ok), PromptCheck::Known);
        let cello = "a music score, instrumentation is cello, key is D minor";
        let PromptCheck::Unseen(u) = v.check(&t, cello) else {
            panic!("cello passed");
        };
        assert_eq!(u.len(), 2);
        assert_eq!(
            (u[0].0.as_str(), u[0].1.as_str()),
            ("instrumentation", "cello")
        );
        assert_eq!(u[0].2, ["piano", "violin"]);
        assert_eq!((u[1].0.as_str(), u[1].1.as_str()), ("key", "D minor"));
        assert!(
            v.check(&t, cello)
                .message("paper")
                .unwrap()
                .contains("cello")
        );
        assert_eq!(v.check(&t, "cello music"), PromptCheck::OffTemplate);
    }
}
