//! Records for text classification and NLI: `{"text", "label"}` JSONL or a TSV with a header
//! (`sentence<TAB>label`, as GLUE SST-2); `{"premise", "hypothesis", "label"}` JSONL for NLI.
//! Labels are names or integers.

use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;

/// One text with its label (as written in the file: a name or an integer's digits).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifyRecord {
    pub text: String,
    pub label: String,
    /// 1-based line in the source file.
    pub line: usize,
}

/// One premise/hypothesis pair with its label name.
#[derive(Clone, Debug, PartialEq)]
pub struct NliRecord {
    pub premise: String,
    pub hypothesis: String,
    pub label: String,
    pub line: usize,
}

/// NLI label names in the MNLI order (integer labels 0, 1, 2).
pub const NLI_LABELS: [&str; 3] = ["entailment", "neutral", "contradiction"];

fn label_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => n.as_i64().map(|i| i.to_string()),
        _ => None,
    }
}

/// Reads classification records: a `.tsv` file (header naming a text column `sentence` or
/// `text` and a `label` column) or JSONL `{"text", "label"}`.
pub fn read_classify(path: &Path) -> Result<Vec<ClassifyRecord>> {
    parse_classify(path, &crate::jsonl::read_text(path)?)
}

/// [`read_classify`] over the file's text; `path` (its extension) says TSV or JSONL.
pub fn parse_classify(path: &Path, text: &str) -> Result<Vec<ClassifyRecord>> {
    let is_tsv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let mut out = Vec::new();
    if is_tsv {
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| DataError::File {
            path: path.into(),
            msg: "empty file: expected a header line".into(),
        })?;
        let cols: Vec<&str> = header.split('\t').map(str::trim).collect();
        let find = |names: &[&str]| cols.iter().position(|c| names.contains(c));
        let (ti, li) = match (find(&["sentence", "text"]), find(&["label"])) {
            (Some(t), Some(l)) => (t, l),
            _ => {
                return Err(DataError::Record {
                    path: path.into(),
                    line: 1,
                    msg: format!(
                        "header {cols:?}: expected a `sentence` (or `text`) and a `label` column"
                    ),
                })
            }
        };
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            match (f.get(ti), f.get(li)) {
                (Some(t), Some(l)) if !l.trim().is_empty() => out.push(ClassifyRecord {
                    text: t.trim().to_string(),
                    label: l.trim().to_string(),
                    line: i + 1,
                }),
                _ => {
                    return Err(DataError::Record {
                        path: path.into(),
                        line: i + 1,
                        msg: format!("expected {} tab-separated columns", cols.len()),
                    })
                }
            }
        }
    } else {
        for (line, v) in crate::jsonl::parse_jsonl(path, text)? {
            let err = |msg: String| DataError::record(path, line, msg);
            let t = v.get("text").and_then(Value::as_str);
            let l = v.get("label").and_then(label_string);
            match (t, l) {
                (Some(t), Some(l)) => out.push(ClassifyRecord {
                    text: t.to_string(),
                    label: l,
                    line,
                }),
                _ => {
                    return Err(err(
                        "expected a string `text` and a `label` (string or integer)".into(),
                    ))
                }
            }
        }
    }
    if out.is_empty() {
        return Err(DataError::File {
            path: path.into(),
            msg: "no records".into(),
        });
    }
    Ok(out)
}

/// NLI records and the number of rows skipped for a label outside the three classes (SNLI
/// marks pairs without annotator agreement `-`).
pub fn read_nli(path: &Path) -> Result<(Vec<NliRecord>, usize)> {
    parse_nli(path, &crate::jsonl::read_text(path)?)
}

/// [`read_nli`] over the file's text; `path` names it in errors.
pub fn parse_nli(path: &Path, text: &str) -> Result<(Vec<NliRecord>, usize)> {
    let mut out = Vec::new();
    let mut skipped = 0;
    for (line, v) in crate::jsonl::parse_jsonl(path, text)? {
        let err = |msg: String| DataError::record(path, line, msg);
        let p = v.get("premise").and_then(Value::as_str);
        let h = v.get("hypothesis").and_then(Value::as_str);
        let (Some(p), Some(h)) = (p, h) else {
            return Err(err(
                "expected string fields `premise` and `hypothesis`".into()
            ));
        };
        let label = v.get("label").and_then(label_string).unwrap_or_default();
        let name = match label.as_str() {
            "0" | "1" | "2" => NLI_LABELS[label.parse::<usize>().unwrap_or(0)].to_string(),
            l if NLI_LABELS.contains(&l) => l.to_string(),
            _ => {
                skipped += 1;
                continue;
            }
        };
        out.push(NliRecord {
            premise: p.to_string(),
            hypothesis: h.to_string(),
            label: name,
            line,
        });
    }
    if out.is_empty() {
        return Err(DataError::File {
            path: path.into(),
            msg: format!("no records with an NLI label ({skipped} skipped)"),
        });
    }
    Ok((out, skipped))
}
