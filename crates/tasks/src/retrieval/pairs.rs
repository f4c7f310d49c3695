//! Retrieval training pairs: JSONL `{"query", "positive"[, "negative"]}` (a hard negative is
//! optional), or SQuAD JSON, where each question is a query and its paragraph the positive.

use crate::{Result, TaskError};
use serde_json::Value;
use std::path::Path;
use tasklm_data::DataError;

/// A query, the text that answers it, and optionally a hard negative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub query: String,
    pub positive: String,
    pub negative: Option<String>,
}

impl Pair {
    /// Every text of the pair (query, positive, negative): what a batch must not repeat.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        [
            Some(&self.query),
            Some(&self.positive),
            self.negative.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
    }
}

/// Reads pairs from `path`: SQuAD JSON (a `.json` object with `data`) or JSONL. Errors name
/// the file and line (or the SQuAD position) and the field.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| TaskError::File {
        path: path.into(),
        msg: e.to_string(),
    })?;
    let squad = serde_json::from_str::<Value>(&text)
        .ok()
        .is_some_and(|v| v.get("data").is_some());
    let pairs = if squad {
        squad_pairs(path, &text)?
    } else {
        jsonl_pairs(path, &text)?
    };
    if pairs.is_empty() {
        return Err(TaskError::File {
            path: path.into(),
            msg: "no training pairs: expected JSONL {\"query\", \"positive\"[, \"negative\"]} \
                  or SQuAD JSON"
                .into(),
        });
    }
    Ok(pairs)
}

/// Each SQuAD question with its paragraph.
fn squad_pairs(path: &Path, text: &str) -> Result<Vec<Pair>> {
    let records = tasklm_data::parse_squad(path, text)?;
    records
        .into_iter()
        .map(|r| {
            if r.question.trim().is_empty() || r.context.trim().is_empty() {
                return Err(TaskError::File {
                    path: path.into(),
                    msg: format!("question {}: empty question or paragraph", r.id),
                });
            }
            Ok(Pair {
                query: r.question,
                positive: r.context,
                negative: None,
            })
        })
        .collect()
}

fn jsonl_pairs(path: &Path, text: &str) -> Result<Vec<Pair>> {
    let mut out = Vec::new();
    for (line, v) in tasklm_data::jsonl::parse_jsonl(path, text)? {
        let field = |k: &str, required: bool| -> Result<Option<String>> {
            match v.get(k) {
                None | Some(Value::Null) if !required => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(Value::String(_)) => Err(DataError::record(
                    path,
                    line,
                    format!("`{k}` is empty: expected a non-empty string"),
                )
                .into()),
                _ => Err(DataError::record(
                    path,
                    line,
                    format!(
                        "expected a string `{k}` (records are {{\"query\", \"positive\"[, \"negative\"]}})"
                    ),
                )
                .into()),
            }
        };
        let (Some(query), Some(positive)) = (field("query", true)?, field("positive", true)?)
        else {
            return Err(DataError::record(path, line, "expected `query` and `positive`").into());
        };
        out.push(Pair {
            query,
            positive,
            negative: field("negative", false)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str) -> Result<Vec<Pair>> {
        let dir = tempfile::tempdir().map_err(|e| TaskError::Invalid(e.to_string()))?;
        let path = dir.path().join(name);
        std::fs::write(&path, text).map_err(|e| TaskError::Invalid(e.to_string()))?;
        read_pairs(&path)
    }

    fn message(r: Result<Vec<Pair>>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn jsonl_pairs_with_and_without_a_negative() -> Result<()> {
        let p = read(
            "p.jsonl",
            "{\"query\": \"q1\", \"positive\": \"p1\"}\n\n{\"query\": \"q2\", \"positive\": \"p2\", \"negative\": \"n2\"}\n",
        )?;
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].negative, None);
        assert_eq!(p[1].negative.as_deref(), Some("n2"));
        assert_eq!(p[1].texts().collect::<Vec<_>>(), ["q2", "p2", "n2"]);
        Ok(())
    }

    #[test]
    fn squad_questions_become_queries_of_their_paragraph() -> Result<()> {
        let squad = r#"{"data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.",
            "qas": [{"id": "a", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]},
                    {"id": "b", "question": "What is in France?", "answers": [{"text": "Paris", "answer_start": 0}]}]}]}]}"#;
        let p = read("s.json", squad)?;
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|x| x.positive == "Paris is in France."));
        assert_eq!(p[1].query, "What is in France?");
        Ok(())
    }

    #[test]
    fn bad_records_name_the_file_line_and_field() {
        let m = message(read(
            "b.jsonl",
            "{\"query\": \"q\", \"positive\": \"p\"}\n{\"query\": \"q\"}\n",
        ));
        assert!(
            m.contains("b.jsonl") && m.contains('2') && m.contains("`positive`"),
            "{m}"
        );
        let m = message(read(
            "e.jsonl",
            "{\"query\": \"q\", \"positive\": \"  \"}\n",
        ));
        assert!(
            m.contains("e.jsonl") && m.contains("`positive` is empty"),
            "{m}"
        );
        let m = message(read(
            "n.jsonl",
            "{\"query\": \"q\", \"positive\": \"p\", \"negative\": 3}\n",
        ));
        assert!(m.contains("`negative`"), "{m}");
        let m = message(read("z.jsonl", "\n"));
        assert!(m.contains("no training pairs"), "{m}");
    }
}
