//! Extractive QA records: SQuAD v1.1 JSON (`data[].paragraphs[].qas[]`) and JSONL
//! `{"id"?, "context", "question", "answers": {"text": [...], "answer_start": [...]}}`.
//! `answer_start` counts characters (Unicode scalar values), as Python indexes strings.

use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;

/// One question over a context, with its reference answers (text, character start).
#[derive(Clone, Debug, PartialEq)]
pub struct QaRecord {
    pub id: String,
    pub context: String,
    pub question: String,
    pub answers: Vec<(String, usize)>,
}

fn answers_of(v: &Value) -> Option<Vec<(String, usize)>> {
    match v {
        // SQuAD JSON: [{"text", "answer_start"}, ...]
        Value::Array(items) => items
            .iter()
            .map(|a| {
                Some((
                    a.get("text")?.as_str()?.to_string(),
                    a.get("answer_start")?.as_u64()? as usize,
                ))
            })
            .collect(),
        // Hugging Face datasets: {"text": [...], "answer_start": [...]}
        Value::Object(_) => {
            let texts = v.get("text")?.as_array()?;
            let starts = v.get("answer_start")?.as_array()?;
            if texts.len() != starts.len() {
                return None;
            }
            texts
                .iter()
                .zip(starts)
                .map(|(t, s)| Some((t.as_str()?.to_string(), s.as_u64()? as usize)))
                .collect()
        }
        _ => None,
    }
}

/// Checks that each answer's text sits at its `answer_start` in the context.
fn check_answers(r: &QaRecord) -> std::result::Result<(), String> {
    let n = r.context.chars().count();
    for (text, start) in &r.answers {
        let len = text.chars().count();
        let found: String = r.context.chars().skip(*start).take(len).collect();
        if start.saturating_add(len) > n || found != *text {
            return Err(format!(
                "question {}: answer {text:?} is not at character {start} of its context",
                r.id
            ));
        }
    }
    Ok(())
}

fn read_squad_json(path: &Path, v: &Value) -> Result<Vec<QaRecord>> {
    let err = |m: String| DataError::File {
        path: path.into(),
        msg: m,
    };
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| err("expected SQuAD JSON: {\"data\": [{\"paragraphs\": ...}]}".into()))?;
    let mut out = Vec::new();
    for (ai, article) in data.iter().enumerate() {
        let paragraphs = article
            .get("paragraphs")
            .and_then(Value::as_array)
            .ok_or_else(|| err(format!("data[{ai}]: expected `paragraphs`")))?;
        for (pi, p) in paragraphs.iter().enumerate() {
            let at = format!("data[{ai}].paragraphs[{pi}]");
            let context = p
                .get("context")
                .and_then(Value::as_str)
                .ok_or_else(|| err(format!("{at}: expected a string `context`")))?;
            for (qi, qa) in p
                .get("qas")
                .and_then(Value::as_array)
                .ok_or_else(|| err(format!("{at}: expected `qas`")))?
                .iter()
                .enumerate()
            {
                let at = format!("{at}.qas[{qi}]");
                let r = QaRecord {
                    id: qa
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("{ai}-{pi}-{qi}"), String::from),
                    context: context.to_string(),
                    question: qa
                        .get("question")
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(format!("{at}: expected a string `question`")))?
                        .to_string(),
                    answers: answers_of(qa.get("answers").unwrap_or(&Value::Null)).ok_or_else(
                        || {
                            err(format!(
                                "{at}: expected `answers` with text and answer_start"
                            ))
                        },
                    )?,
                };
                check_answers(&r).map_err(|m| err(format!("{at}: {m}")))?;
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Reads QA records: SQuAD JSON (`.json` with a `data` key) or JSONL.
pub fn read_squad(path: &Path) -> Result<Vec<QaRecord>> {
    parse_squad(path, &crate::jsonl::read_text(path)?)
}

/// [`read_squad`] over the file's text; `path` names it in errors.
pub fn parse_squad(path: &Path, text: &str) -> Result<Vec<QaRecord>> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        if v.get("data").is_some() {
            return read_squad_json(path, &v);
        }
    }
    let mut out = Vec::new();
    for (line, v) in crate::jsonl::parse_jsonl(path, text)? {
        let err = |m: &str| DataError::record(path, line, m.to_string());
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| err(&format!("expected a string `{k}`")))
        };
        let r = QaRecord {
            id: v
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| line.to_string(), String::from),
            context: field("context")?,
            question: field("question")?,
            answers: answers_of(v.get("answers").unwrap_or(&Value::Null)).ok_or_else(|| {
                err("expected `answers`: {\"text\": [...], \"answer_start\": [...]}")
            })?,
        };
        check_answers(&r).map_err(|m| err(&m))?;
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_start_near_u64_max_is_an_error_not_an_overflow() {
        // `start + len` overflowed (a panic in debug builds) before.
        let path = Path::new("qa.jsonl");
        let line = r#"{"context": "abc", "question": "q", "answers": {"text": ["bc"], "answer_start": [18446744073709551615]}}"#;
        let err = parse_squad(path, line)
            .expect_err("start past the end")
            .to_string();
        assert!(
            err.contains("qa.jsonl:1") && err.contains("not at character"),
            "{err}"
        );
        let ok = r#"{"context": "abc", "question": "q", "answers": {"text": ["bc"], "answer_start": [1]}}"#;
        let r = parse_squad(path, ok).map_err(|e| e.to_string());
        assert_eq!(
            r.map(|r| r[0].answers.clone()),
            Ok(vec![("bc".to_string(), 1)])
        );
    }
}
