//! Classification and NLI with a decoder (task families 3b and 4b): a prompt template turns a
//! record into a prompt, each label is a word that continues it, and the model's answer is the
//! softmax over the labels' log-probabilities. Saved in `tasklm.json` with a trained model.

use crate::{Result, TaskError, TaskKind};
use serde::{Deserialize, Serialize};
use tasklm_data::{ClassifyRecord, NliRecord, NLI_LABELS};

/// The default classification prompt.
pub const CLASSIFY_TEMPLATE: &str = "Review: {text} Sentiment:";
/// The default NLI prompt (the instruction of the seed task).
pub const NLI_TEMPLATE: &str = "Based on the Premise, determine if the Hypothesis is an entailment, contradiction, or neutral.\n\nPremise: {premise}\nHypothesis: {hypothesis}\n\nThe logical relationship is:";

/// A record for a label task: named fields and, when known, its label.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelExample {
    pub fields: Vec<(String, String)>,
    pub label: Option<String>,
}

impl From<&ClassifyRecord> for LabelExample {
    fn from(r: &ClassifyRecord) -> Self {
        Self {
            fields: vec![("text".into(), r.text.clone())],
            label: Some(r.label.clone()),
        }
    }
}

impl From<&NliRecord> for LabelExample {
    fn from(r: &NliRecord) -> Self {
        Self {
            fields: vec![
                ("premise".into(), r.premise.clone()),
                ("hypothesis".into(), r.hypothesis.clone()),
            ],
            label: Some(r.label.clone()),
        }
    }
}

/// How a record becomes a prompt and which words stand for the labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelPrompt {
    /// `classify` or `nli`.
    pub task: TaskKind,
    /// With `{text}` (classify) or `{premise}` and `{hypothesis}` (nli).
    pub template: String,
    /// The label values of the data, in a fixed order.
    pub labels: Vec<String>,
    /// The continuation that stands for each label.
    pub words: Vec<String>,
}

impl LabelPrompt {
    /// The defaults for `task` over the labels `seen` in the data: SST-2's 0/1 become
    /// ` negative`/` positive`, NLI labels and other names their own word.
    pub fn defaults(task: TaskKind, seen: &[String]) -> Result<Self> {
        let (template, labels) = match task {
            TaskKind::Nli => (
                NLI_TEMPLATE,
                NLI_LABELS.iter().map(|s| s.to_string()).collect(),
            ),
            TaskKind::Classify => {
                let mut l: Vec<String> = seen.to_vec();
                l.sort();
                l.dedup();
                (CLASSIFY_TEMPLATE, l)
            }
            other => {
                return Err(TaskError::Invalid(format!(
                    "no label prompt for task `{other}`"
                )))
            }
        };
        if labels.len() < 2 {
            return Err(TaskError::Invalid(format!(
                "a classifier needs at least two labels, the data has {labels:?}"
            )));
        }
        let words = if labels == ["0", "1"] {
            vec![" negative".into(), " positive".into()]
        } else {
            labels.iter().map(|l| format!(" {l}")).collect()
        };
        Ok(Self {
            task,
            template: template.into(),
            labels,
            words,
        })
    }

    /// Replaces the words with a comma-separated list, one per label in order; a word that
    /// does not start with whitespace gets a leading space.
    pub fn with_words(mut self, list: &str) -> Result<Self> {
        let words: Vec<String> = list
            .split(',')
            .map(|w| {
                let w = w.trim_end();
                if w.starts_with(char::is_whitespace) {
                    w.to_string()
                } else {
                    format!(" {w}")
                }
            })
            .collect();
        if words.len() != self.labels.len() || words.iter().any(|w| w.trim().is_empty()) {
            return Err(TaskError::Invalid(format!(
                "--label-words `{list}`: expected {} non-empty words, one per label {:?}",
                self.labels.len(),
                self.labels
            )));
        }
        self.words = words;
        Ok(self)
    }

    /// Replaces the template, checking its placeholders.
    pub fn with_template(mut self, template: &str) -> Result<Self> {
        self.template = template.into();
        let probe = LabelExample {
            fields: self
                .field_names()
                .iter()
                .map(|f| (f.to_string(), String::new()))
                .collect(),
            label: None,
        };
        self.render(&probe)?;
        Ok(self)
    }

    fn field_names(&self) -> &'static [&'static str] {
        if self.task == TaskKind::Nli {
            &["premise", "hypothesis"]
        } else {
            &["text"]
        }
    }

    /// The prompt for `ex`: every `{field}` replaced; a template missing a field of the task,
    /// or naming one the record lacks, is an error.
    pub fn render(&self, ex: &LabelExample) -> Result<String> {
        let mut out = self.template.clone();
        for name in self.field_names() {
            let key = format!("{{{name}}}");
            if !self.template.contains(&key) {
                return Err(TaskError::Invalid(format!(
                    "prompt template `{}` lacks `{key}`",
                    self.template
                )));
            }
            let value = ex
                .fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| TaskError::Invalid(format!("the record has no `{name}`")))?;
            out = out.replace(&key, value);
        }
        if let Some(i) = out.find('{').filter(|&i| out[i..].contains('}')) {
            let end = out[i..].find('}').map_or(out.len(), |j| i + j + 1);
            let name = &out[i..end];
            if !name.contains(char::is_whitespace) && name.len() < 32 {
                return Err(TaskError::Invalid(format!(
                    "prompt template `{}` has an unknown placeholder `{name}`",
                    self.template
                )));
            }
        }
        Ok(out)
    }

    /// The index of `label` among the labels.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str) -> LabelExample {
        LabelExample {
            fields: vec![("text".into(), text.into())],
            label: None,
        }
    }

    #[test]
    fn sst2_defaults_and_overrides() -> Result<()> {
        let p = LabelPrompt::defaults(TaskKind::Classify, &["1".into(), "0".into(), "1".into()])?;
        assert_eq!(p.labels, ["0", "1"]);
        assert_eq!(p.words, [" negative", " positive"]);
        assert_eq!(p.render(&ex("a gem"))?, "Review: a gem Sentiment:");
        let p = p.with_words("bad, good")?;
        assert_eq!(p.words, [" bad", " good"]);
        assert!(p.clone().with_words("only-one").is_err());
        let p = p.with_template("Text: {text}\nMood:")?;
        assert_eq!(p.render(&ex("fine"))?, "Text: fine\nMood:");
        let err = p.with_template("Text: {txt}").expect_err("unknown field");
        assert!(err.to_string().contains("{text}"), "{err}");
        Ok(())
    }

    #[test]
    fn nli_prompt_names_both_sentences() -> Result<()> {
        let p = LabelPrompt::defaults(TaskKind::Nli, &[])?;
        assert_eq!(p.words, [" entailment", " neutral", " contradiction"]);
        let e = LabelExample {
            fields: vec![
                ("premise".into(), "A dog runs.".into()),
                ("hypothesis".into(), "An animal moves.".into()),
            ],
            label: None,
        };
        let text = p.render(&e)?;
        assert!(text.contains("Premise: A dog runs.\nHypothesis: An animal moves.\n\nThe logical"));
        Ok(())
    }
}
