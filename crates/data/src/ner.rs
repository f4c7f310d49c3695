//! NER records: CoNLL files (one token per line, the tag in the last column, a blank line
//! between sentences, `-DOCSTART-` lines skipped) and JSONL `{"tokens", "ner_tags"}` with tag
//! names, or integers in the Hugging Face `conll2003` order ([`CONLL2003_TAGS`]).

use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;

/// Tag names of the Hugging Face `conll2003` dataset, by integer id.
pub const CONLL2003_TAGS: [&str; 9] = [
    "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC",
];

/// One sentence: its words and their tags.
#[derive(Clone, Debug, PartialEq)]
pub struct NerRecord {
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
    /// 1-based line where the sentence starts.
    pub line: usize,
}

fn check_tag(path: &Path, line: usize, tag: &str) -> Result<()> {
    let ok = tag == "O"
        || ["B-", "I-", "E-", "S-"]
            .iter()
            .any(|p| tag.len() > 2 && tag.starts_with(p));
    if ok {
        Ok(())
    } else {
        Err(DataError::record(
            path,
            line,
            format!("tag `{tag}`: expected O or B-/I-/E-/S- followed by a type"),
        ))
    }
}

fn read_conll(path: &Path, text: &str) -> Result<Vec<NerRecord>> {
    let mut out = Vec::new();
    let mut cur = NerRecord {
        tokens: Vec::new(),
        tags: Vec::new(),
        line: 1,
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with("-DOCSTART-") {
            if !cur.tokens.is_empty() {
                out.push(std::mem::replace(
                    &mut cur,
                    NerRecord {
                        tokens: Vec::new(),
                        tags: Vec::new(),
                        line: line_no + 1,
                    },
                ));
            } else {
                cur.line = line_no + 1;
            }
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 2 {
            return Err(DataError::record(
                path,
                line_no,
                "expected a token and its tag (the tag in the last column)",
            ));
        }
        let tag = cols[cols.len() - 1];
        check_tag(path, line_no, tag)?;
        cur.tokens.push(cols[0].to_string());
        cur.tags.push(tag.to_string());
    }
    if !cur.tokens.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn read_ner_jsonl(path: &Path, text: &str) -> Result<Vec<NerRecord>> {
    let mut out = Vec::new();
    for (line, v) in crate::jsonl::parse_jsonl(path, text)? {
        let err = |m: &str| DataError::record(path, line, m.to_string());
        let tokens: Vec<String> = v
            .get("tokens")
            .and_then(Value::as_array)
            .ok_or_else(|| err("expected `tokens`: a list of strings"))?
            .iter()
            .map(|t| t.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| err("`tokens` must hold strings"))?;
        let tags: Vec<String> = v
            .get("ner_tags")
            .and_then(Value::as_array)
            .ok_or_else(|| err("expected `ner_tags`: a list of tag names or conll2003 ids"))?
            .iter()
            .map(|t| match t {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|i| CONLL2003_TAGS.get(i as usize))
                    .map(|s| s.to_string()),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| err("`ner_tags` must hold tag names or conll2003 ids 0..=8"))?;
        if tokens.len() != tags.len() {
            return Err(err(&format!(
                "{} tokens but {} ner_tags",
                tokens.len(),
                tags.len()
            )));
        }
        for t in &tags {
            check_tag(path, line, t)?;
        }
        out.push(NerRecord { tokens, tags, line });
    }
    Ok(out)
}

/// Reads NER sentences: JSONL when the file ends in `.jsonl`/`.json`, else CoNLL columns.
pub fn read_ner(path: &Path) -> Result<Vec<NerRecord>> {
    parse_ner(path, &crate::jsonl::read_text(path)?)
}

/// [`read_ner`] over the file's text; `path` (its extension) says JSONL or CoNLL.
pub fn parse_ner(path: &Path, text: &str) -> Result<Vec<NerRecord>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "jsonl" || ext == "json" {
        return read_ner_jsonl(path, text);
    }
    let out = read_conll(path, text)?;
    if out.is_empty() {
        return Err(DataError::File {
            path: path.into(),
            msg: "no sentences: expected CoNLL columns (token ... tag) or JSONL".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conll_sentences_tags_and_errors() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("tasklm-ner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| DataError::File {
            path: dir.clone(),
            msg: e.to_string(),
        })?;
        let p = dir.join("a.txt");
        let write = |s: &str| std::fs::write(&p, s).expect("write temp file");
        write("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n");
        let r = read_ner(&p)?;
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].tokens, ["EU", "rejects"]);
        assert_eq!(r[0].tags, ["B-ORG", "O"]);
        assert_eq!((r[0].line, r[1].line), (3, 6));
        write("EU NNP B-NP X-ORG\n");
        let e = read_ner(&p).expect_err("bad tag").to_string();
        assert!(e.contains("a.txt:1") && e.contains("X-ORG"), "{e}");
        let j = dir.join("b.jsonl");
        std::fs::write(
            &j,
            "{\"tokens\": [\"EU\", \"x\"], \"ner_tags\": [3, 0]}\n{\"tokens\": [\"a\"]}\n",
        )
        .expect("write temp file");
        let e = read_ner(&j).expect_err("missing tags").to_string();
        assert!(e.contains("b.jsonl:2") && e.contains("ner_tags"), "{e}");
        std::fs::write(&j, "{\"tokens\": [\"EU\", \"x\"], \"ner_tags\": [3, 0]}\n").expect("write");
        assert_eq!(read_ner(&j)?[0].tags, ["B-ORG", "O"]);
        Ok(())
    }
}
