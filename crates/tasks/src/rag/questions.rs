//! The questions `eval --task rag` asks: SQuAD JSON (each question with its answers, its
//! paragraph as the gold context, and that paragraph's index id `{article title}/{paragraph
//! index}`, as `tasklm index build` names SQuAD paragraphs), or JSONL `{"question", "answer"
//! (string or list)[, "context"][, "doc_id"][, "id"]}`.

use crate::{Result, TaskError};
use serde_json::Value;
use std::path::Path;

/// One question with what it is scored against.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub id: String,
    pub question: String,
    pub answers: Vec<String>,
    /// The paragraph that answers it (empty when the data has none).
    pub context: String,
    /// The index id of that paragraph, for retrieval recall.
    pub doc_id: Option<String>,
}

/// Reads the questions of `path` (SQuAD JSON when it has a `data` key, else JSONL).
pub fn read_questions(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).map_err(|e| TaskError::File {
        path: path.into(),
        msg: format!("cannot read the questions: {e}"),
    })?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        if v.get("data").is_some() {
            return squad_questions(path, &text, &v);
        }
    }
    let records = tasklm_data::parse_generative("genqa", path, &text)?;
    let jsonl = tasklm_data::jsonl::parse_jsonl(path, &text)?;
    Ok(records
        .into_iter()
        .zip(jsonl)
        .map(|(r, (_, v))| Question {
            id: r.id.clone(),
            question: r.field("question").to_string(),
            context: r.field("context").to_string(),
            answers: r.references,
            doc_id: v.get("doc_id").and_then(Value::as_str).map(String::from),
        })
        .collect())
}

/// SQuAD JSON: the checked records of `tasklm_data`, with each paragraph's index id.
fn squad_questions(path: &Path, text: &str, v: &Value) -> Result<Vec<Question>> {
    let records = tasklm_data::parse_squad(path, text)?;
    let mut doc_ids = Vec::with_capacity(records.len());
    let articles = v.get("data").and_then(Value::as_array);
    for (a, article) in articles.into_iter().flatten().enumerate() {
        // The same id rule as the index's SQuAD reader (an untitled article by its index).
        let title = match article.get("title").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => a.to_string(),
        };
        let paragraphs = article.get("paragraphs").and_then(Value::as_array);
        for (p, para) in paragraphs.into_iter().flatten().enumerate() {
            let n = para
                .get("qas")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            doc_ids.extend(std::iter::repeat_n(format!("{title}/{p}"), n));
        }
    }
    if doc_ids.len() != records.len() {
        return Err(TaskError::File {
            path: path.into(),
            msg: format!(
                "{} questions but {} paragraph ids: expected SQuAD JSON",
                records.len(),
                doc_ids.len()
            ),
        });
    }
    Ok(records
        .into_iter()
        .zip(doc_ids)
        .map(|(r, doc_id)| Question {
            id: r.id,
            question: r.question,
            answers: r.answers.into_iter().map(|a| a.0).collect(),
            context: r.context,
            doc_id: Some(doc_id),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_questions_carry_their_paragraph_id_and_jsonl_its_own() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let squad = dir.path().join("s.json");
        std::fs::write(
            &squad,
            r#"{"data": [{"title": "Rome", "paragraphs": [
                {"context": "Rome is old.", "qas": []},
                {"context": "Rome has the Tiber.", "qas": [
                    {"id": "q1", "question": "Which river?", "answers": [{"text": "the Tiber", "answer_start": 9}]}]}]},
              {"title": "", "paragraphs": [{"context": "Oslo is cold.", "qas": [
                    {"id": "q2", "question": "Cold?", "answers": [{"text": "cold", "answer_start": 8}]}]}]}]}"#,
        )?;
        let q = read_questions(&squad)?;
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].doc_id.as_deref(), Some("Rome/1"));
        assert_eq!(q[0].answers, vec!["the Tiber".to_string()]);
        assert_eq!(q[0].context, "Rome has the Tiber.");
        assert_eq!(q[1].doc_id.as_deref(), Some("1/0"));

        let jsonl = dir.path().join("q.jsonl");
        std::fs::write(
            &jsonl,
            "{\"id\": \"a\", \"question\": \"Q?\", \"answer\": [\"x\", \"y\"], \"doc_id\": \"d/3\"}\n{\"question\": \"R?\", \"answer\": \"z\"}\n",
        )?;
        let q = read_questions(&jsonl)?;
        assert_eq!(q[0].doc_id.as_deref(), Some("d/3"));
        assert_eq!(q[0].answers.len(), 2);
        assert_eq!((q[1].id.as_str(), q[1].doc_id.as_ref()), ("2", None));

        std::fs::write(&jsonl, "{\"question\": \"Q?\"}\n")?;
        let e = read_questions(&jsonl).unwrap_err().to_string();
        assert!(e.contains("q.jsonl:1") && e.contains("answer"), "{e}");
        Ok(())
    }
}
