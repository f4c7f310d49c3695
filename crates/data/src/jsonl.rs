//! JSON Lines: one JSON value per non-empty line, each error naming the file and line.

use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;

/// Reads `path` as UTF-8 text, the error naming the file.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| DataError::File {
        path: path.into(),
        msg: e.to_string(),
    })
}

/// Every non-empty line of `path` parsed as JSON, with its 1-based line number.
pub fn read_jsonl(path: &Path) -> Result<Vec<(usize, Value)>> {
    parse_jsonl(path, &read_text(path)?)
}

/// [`read_jsonl`] over text already in memory; `path` names it in errors.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<(usize, Value)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| DataError::record(path, i + 1, format!("invalid JSON: {e}")))?;
        out.push((i + 1, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_entries_match_the_file_readers() -> Result<()> {
        let p = Path::new("mem.jsonl");
        let v = parse_jsonl(p, "{\"a\": 1}\n\n  \n[2]\n")?;
        assert_eq!(v.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 4]);
        let err = parse_jsonl(p, "{}\n{\"a\":\n")
            .expect_err("bad line")
            .to_string();
        assert!(err.starts_with("mem.jsonl:2: invalid JSON"), "{err}");
        let tsv = crate::parse_classify(Path::new("x.tsv"), "sentence\tlabel\nfine\t1\n")?;
        assert_eq!((tsv[0].text.as_str(), tsv[0].line), ("fine", 2));
        let ner = crate::parse_ner(Path::new("x.conll"), "EU B-ORG\n\nx O\n")?;
        assert_eq!(ner.len(), 2);
        let gen = crate::parse_generative("reasoning", p, "{\"question\":\"q\",\"answer\":\"a\"}")?;
        assert_eq!(gen[0].target, "a");
        Ok(())
    }
}
