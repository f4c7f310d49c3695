//! Records of the generative tasks: each has input fields for a prompt, the target the model
//! is trained on, and the references its output is scored against.
//!
//! - `genqa`: SQuAD JSON or JSONL `{question, answer (string or list)[, context][, id]}`;
//! - `summarize`: JSONL `{dialogue | document, summary}`, or with several references
//!   (`summary1`, `summary2`, ... as DialogSum's test file has, or a `summaries` list);
//! - `translate`: line-aligned `PREFIX.SRC[.gz]` / `PREFIX.TGT[.gz]`, or JSONL `{source, target}`;
//! - `code`: the HumanEval/MBXP layout `{task_id, prompt, canonical_solution, test, entry_point}`;
//! - `reasoning`: GSM8K `{question, answer}` (the answer holds the worked solution and `#### N`).

use crate::{DataError, Result};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One generative example.
#[derive(Clone, Debug, PartialEq)]
pub struct GenRecord {
    /// The record's own `id`/`task_id`, else its line number.
    pub id: String,
    /// Named inputs the task's prompt template reads.
    pub fields: Vec<(String, String)>,
    /// The text the model learns to produce.
    pub target: String,
    /// What the output is scored against (the target, or every listed answer).
    pub references: Vec<String>,
    /// Code tasks: the test program and the function it checks.
    pub test: Option<(String, String)>,
}

impl GenRecord {
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.0 == name)
            .map_or("", |f| f.1.as_str())
    }
}

fn str_field(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).map(String::from))
}

fn record_id(v: &Value, line: usize) -> String {
    match v
        .get("id")
        .or_else(|| v.get("task_id"))
        .or_else(|| v.get("fname"))
    {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => line.to_string(),
    }
}

/// Reads a JSONL file into records with `convert`, which names what a line lacks.
fn jsonl_records(
    path: &Path,
    text: &str,
    convert: impl Fn(&Value, usize) -> std::result::Result<GenRecord, String>,
) -> Result<Vec<GenRecord>> {
    crate::jsonl::parse_jsonl(path, text)?
        .into_iter()
        .map(|(line, v)| convert(&v, line).map_err(|m| DataError::record(path, line, m)))
        .collect()
}

fn genqa(path: &Path, text: &str) -> Result<Vec<GenRecord>> {
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(crate::squad::parse_squad(path, text)?
            .into_iter()
            .map(|r| {
                let refs: Vec<String> = r.answers.iter().map(|a| a.0.clone()).collect();
                GenRecord {
                    id: r.id,
                    fields: vec![
                        ("context".into(), r.context),
                        ("question".into(), r.question),
                    ],
                    target: refs.first().cloned().unwrap_or_default(),
                    references: refs,
                    test: None,
                }
            })
            .collect());
    }
    jsonl_records(path, text, |v, line| {
        let question = str_field(v, &["question"]).ok_or("expected a string `question`")?;
        let refs: Vec<String> = match v.get("answer").or_else(|| v.get("answers")) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Some(Value::Object(o)) => o
                .get("text")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if refs.is_empty() {
            return Err("expected `answer`: a string or a list of strings".into());
        }
        Ok(GenRecord {
            id: record_id(v, line),
            fields: vec![
                (
                    "context".into(),
                    str_field(v, &["context"]).unwrap_or_default(),
                ),
                ("question".into(), question),
            ],
            target: refs[0].clone(),
            references: refs,
            test: None,
        })
    })
}

fn summarize(path: &Path, text: &str) -> Result<Vec<GenRecord>> {
    jsonl_records(path, text, |v, line| {
        let doc = str_field(v, &["dialogue", "document"])
            .ok_or("expected a string `dialogue` or `document`")?;
        let references = summaries(v)?;
        Ok(GenRecord {
            id: record_id(v, line),
            fields: vec![("document".into(), doc)],
            target: references[0].clone(),
            references,
            test: None,
        })
    })
}

/// A summarize record's references: `summary`, then `summary1`, `summary2`, ... (DialogSum's
/// test file has three), or a `summaries` list. The first is the training target.
fn summaries(v: &Value) -> std::result::Result<Vec<String>, String> {
    if let Some(list) = v.get("summaries") {
        let refs: Option<Vec<String>> = list
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or(None);
        return match refs {
            Some(r) if !r.is_empty() => Ok(r),
            _ => Err("expected `summaries`: a non-empty list of strings".into()),
        };
    }
    let mut refs: Vec<String> = str_field(v, &["summary"]).into_iter().collect();
    for n in 1.. {
        let key = format!("summary{n}");
        match v.get(&key) {
            None => break,
            Some(Value::String(s)) => refs.push(s.clone()),
            Some(_) => return Err(format!("expected a string `{key}`")),
        }
    }
    if refs.is_empty() {
        return Err(
            "expected a string `summary` (or `summary1`, `summary2`, ..., or a `summaries` list)"
                .into(),
        );
    }
    Ok(refs)
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let err = |m: String| DataError::File {
        path: path.into(),
        msg: m,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .map_err(|e| err(format!("not a gzip text file: {e}")))?;
        s
    } else {
        String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8: {e}")))?
    };
    Ok(text.lines().map(String::from).collect())
}

/// `PREFIX.LANG`, or `PREFIX.LANG.gz` when only that exists.
fn side(prefix: &Path, lang: &str) -> PathBuf {
    let plain = PathBuf::from(format!("{}.{lang}", prefix.display()));
    if plain.exists() {
        plain
    } else {
        PathBuf::from(format!("{}.{lang}.gz", prefix.display()))
    }
}

/// The files [`read_translation`] reads for `data`: the JSONL file itself, or the source and
/// target sides of a line-aligned prefix.
pub fn translation_files(data: &Path, src: &str, tgt: &str) -> Vec<PathBuf> {
    if data.extension().is_some_and(|e| e == "jsonl") {
        vec![data.to_path_buf()]
    } else {
        vec![side(data, src), side(data, tgt)]
    }
}

/// Translation pairs: JSONL `{source, target}` when `data` is a file ending in `.jsonl`,
/// else the line-aligned `data.SRC[.gz]` and `data.TGT[.gz]`.
pub fn read_translation(data: &Path, src: &str, tgt: &str) -> Result<Vec<GenRecord>> {
    if data.extension().is_some_and(|e| e == "jsonl") {
        return jsonl_records(data, &crate::jsonl::read_text(data)?, |v, line| {
            let s = str_field(v, &["source"]).ok_or("expected a string `source`")?;
            let t = str_field(v, &["target"]).ok_or("expected a string `target`")?;
            Ok(GenRecord {
                id: record_id(v, line),
                fields: vec![("source".into(), s)],
                target: t.clone(),
                references: vec![t],
                test: None,
            })
        });
    }
    let (sp, tp) = (side(data, src), side(data, tgt));
    let (s, t) = (read_lines(&sp)?, read_lines(&tp)?);
    if s.len() != t.len() {
        return Err(DataError::File {
            path: tp,
            msg: format!("{} lines, but {} has {}", t.len(), sp.display(), s.len()),
        });
    }
    Ok(s.into_iter()
        .zip(t)
        .enumerate()
        .map(|(i, (s, t))| GenRecord {
            id: (i + 1).to_string(),
            fields: vec![("source".into(), s)],
            target: t.clone(),
            references: vec![t],
            test: None,
        })
        .collect())
}

fn code(path: &Path, text: &str) -> Result<Vec<GenRecord>> {
    jsonl_records(path, text, |v, line| {
        let get = |k: &str| str_field(v, &[k]).ok_or(format!("expected a string `{k}`"));
        let solution = get("canonical_solution")?;
        Ok(GenRecord {
            id: record_id(v, line),
            fields: vec![("prompt".into(), get("prompt")?)],
            target: solution.clone(),
            references: vec![solution],
            test: Some((get("test")?, get("entry_point")?)),
        })
    })
}

fn reasoning(path: &Path, text: &str) -> Result<Vec<GenRecord>> {
    jsonl_records(path, text, |v, line| {
        let q = str_field(v, &["question"]).ok_or("expected a string `question`")?;
        let a = str_field(v, &["answer"]).ok_or("expected a string `answer`")?;
        Ok(GenRecord {
            id: record_id(v, line),
            fields: vec![("question".into(), q)],
            target: a.clone(),
            references: vec![a],
            test: None,
        })
    })
}

/// Reads `path` as records of `task` (`genqa`, `summarize`, `code`, `reasoning`; translation
/// has [`read_translation`]).
pub fn read_generative(task: &str, path: &Path) -> Result<Vec<GenRecord>> {
    if !["genqa", "summarize", "code", "reasoning"].contains(&task) {
        return parse_generative(task, path, "");
    }
    parse_generative(task, path, &crate::jsonl::read_text(path)?)
}

/// [`read_generative`] over the file's text; `path` names it in errors (and, for `genqa`, a
/// `.json` extension says SQuAD JSON).
pub fn parse_generative(task: &str, path: &Path, text: &str) -> Result<Vec<GenRecord>> {
    match task {
        "genqa" => genqa(path, text),
        "summarize" => summarize(path, text),
        "code" => code(path, text),
        "reasoning" => reasoning(path, text),
        other => Err(DataError::File {
            path: path.into(),
            msg: format!("`{other}` is not a generative task"),
        }),
    }
}
