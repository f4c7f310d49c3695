//! The RAG prompt: a template with `{question}` and the passages, as `{passages}` (numbered,
//! with titles, so that an answer can cite them) or `{context}` (the texts alone, the layout a
//! `--task genqa` fine-tune was trained on).

use crate::{Result, TaskError};

/// The default: the numbered passages, then the instruction to answer only from them and the
/// question (closest to the answer, which small models follow best).
pub const DEFAULT_TEMPLATE: &str = "{passages}\n\nAnswer the question using only the passages \
above, with a few words from them.\nQuestion: {question}\nAnswer:";

/// For a generator fine-tuned with `--task genqa` on context + question: its own prompt.
pub const GENQA_TEMPLATE: &str =
    "Answer the question from the context.\n\nContext: {context}\n\nQuestion: {question}\nAnswer:";

/// Without passages (`--context none`): the closed-book question.
pub const CLOSED_BOOK_TEMPLATE: &str = "Question: {question}\nAnswer:";

/// One passage as the prompt shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Passage<'a> {
    pub title: &'a str,
    pub text: &'a str,
}

/// A checked template.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptTemplate {
    text: String,
}

impl PromptTemplate {
    /// `text` must hold `{question}`, and `{passages}` or `{context}` unless `closed_book`.
    pub fn new(text: &str, closed_book: bool) -> Result<Self> {
        let has = |p: &str| text.contains(p);
        if !has("{question}") {
            return Err(TaskError::Invalid(format!(
                "--prompt-template {text:?}: expected a {{question}} placeholder"
            )));
        }
        if !closed_book && !has("{passages}") && !has("{context}") {
            return Err(TaskError::Invalid(format!(
                "--prompt-template {text:?}: expected {{passages}} (numbered, titled) or \
                 {{context}} (texts alone) where the retrieved passages go"
            )));
        }
        Ok(Self {
            text: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The prompt for `question` over `passages` (in rank order, cited as [1], [2], ...).
    pub fn render(&self, question: &str, passages: &[Passage]) -> String {
        let numbered = passages
            .iter()
            .enumerate()
            .map(|(i, p)| match p.title.is_empty() {
                true => format!("[{}] {}", i + 1, p.text.trim()),
                false => format!("[{}] {}: {}", i + 1, p.title, p.text.trim()),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let plain = passages
            .iter()
            .map(|p| p.text.trim())
            .collect::<Vec<_>>()
            .join("\n\n");
        // One pass over the template, so that a question holding "{context}" stays as it is.
        let mut out = String::with_capacity(self.text.len() + numbered.len() + question.len());
        let mut rest = self.text.as_str();
        while let Some(at) = rest.find('{') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let (value, len) = if tail.starts_with("{question}") {
                (question.trim(), "{question}".len())
            } else if tail.starts_with("{passages}") {
                (numbered.as_str(), "{passages}".len())
            } else if tail.starts_with("{context}") {
                (plain.as_str(), "{context}".len())
            } else {
                ("{", 1)
            };
            out.push_str(value);
            rest = &tail[len..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passages() -> Vec<Passage<'static>> {
        vec![
            Passage {
                title: "Paris",
                text: " Paris is the capital of France. ",
            },
            Passage {
                title: "",
                text: "The Seine flows through it.",
            },
        ]
    }

    #[test]
    fn passages_are_numbered_and_titled_and_context_is_plain() -> Result<()> {
        let t = PromptTemplate::new("{passages}|{context}|Q: {question}", false)?;
        let got = t.render("What is {context}?", &passages());
        assert_eq!(
            got,
            "[1] Paris: Paris is the capital of France.\n\n[2] The Seine flows through it.|\
             Paris is the capital of France.\n\nThe Seine flows through it.|Q: What is {context}?"
        );
        Ok(())
    }

    #[test]
    fn the_defaults_render_and_a_template_without_slots_is_refused() -> Result<()> {
        for (t, closed) in [
            (DEFAULT_TEMPLATE, false),
            (GENQA_TEMPLATE, false),
            (CLOSED_BOOK_TEMPLATE, true),
        ] {
            let p = PromptTemplate::new(t, closed)?.render("Why?", &passages());
            assert!(p.ends_with("Question: Why?\nAnswer:"), "{p}");
        }
        let e = PromptTemplate::new("Context: {passages}", false).unwrap_err();
        assert!(e.to_string().contains("{question}"), "{e}");
        let e = PromptTemplate::new("Q: {question}", false).unwrap_err();
        assert!(e.to_string().contains("{passages}"), "{e}");
        assert!(PromptTemplate::new("Q: {question}", true).is_ok());
        Ok(())
    }
}
