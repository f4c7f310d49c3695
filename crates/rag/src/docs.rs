//! Documents to index, from three sources: JSONL (`{"id", "title", "text"}`, one per line), a
//! folder of `.txt`/`.md` files (one document each, its path relative to the folder as id), or
//! SQuAD JSON (each paragraph one document, id `{article title}/{paragraph index}`).
//!
//! JSONL and text files are streamed line by line: a text file is handed on in segments of
//! about [`SEGMENT_CHARS`] characters cut at line ends, each with its character offset in the
//! file, so a file larger than memory is never loaded whole. SQuAD JSON is one JSON document
//! and is read whole.

use crate::{RagError, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Characters of a text file handed on at once (a segment ends at the first line end past it).
pub const SEGMENT_CHARS: usize = 1 << 16;

/// One document, or one segment of a large text file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub text: String,
    /// Character offset of `text` in the document (non-zero for later segments of a file).
    pub offset: usize,
    /// Where it was read: the file and its line (1-based) where the record or segment starts.
    pub path: PathBuf,
    pub line: usize,
}

/// Calls `f` on every document under `path` in order; returns how many documents (not
/// segments) there were.
pub fn read_documents(path: &Path, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<usize> {
    if path.is_dir() {
        read_folder(path, f)
    } else if !path.exists() {
        Err(RagError::file(path, "no such file or folder of documents"))
    } else if path.extension().is_some_and(|e| e == "json") {
        read_squad(path, f)
    } else {
        read_jsonl(path, f)
    }
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| RagError::file(path, e))?;
    Ok(BufReader::new(file))
}

fn read_jsonl(path: &Path, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<usize> {
    let mut n = 0;
    for (i, line) in open(path)?.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| RagError::line(path, line_no, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| RagError::line(path, line_no, format!("invalid JSON: {e}")))?;
        let text = match v.get("text") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
            Some(Value::String(_)) => return Err(RagError::line(path, line_no, "empty \"text\"")),
            _ => {
                return Err(RagError::line(
                    path,
                    line_no,
                    "expected an object with a string \"text\" (and \"id\", \"title\")",
                ))
            }
        };
        let id = match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None => line_no.to_string(),
            Some(_) => {
                return Err(RagError::line(
                    path,
                    line_no,
                    "\"id\" must be a string or a number",
                ))
            }
        };
        let title = v.get("title").and_then(Value::as_str).unwrap_or("");
        f(Document {
            id,
            title: title.to_string(),
            text,
            offset: 0,
            path: path.to_path_buf(),
            line: line_no,
        })?;
        n += 1;
    }
    Ok(n)
}

fn read_squad(path: &Path, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<usize> {
    let v: Value = serde_json::from_reader(open(path)?)
        .map_err(|e| RagError::file(path, format!("invalid JSON: {e}")))?;
    let Some(articles) = v.get("data").and_then(Value::as_array) else {
        return Err(RagError::file(
            path,
            "expected SQuAD JSON ({\"data\": [{\"title\", \"paragraphs\": [{\"context\"}]}]}); JSONL documents need a .jsonl name",
        ));
    };
    let mut n = 0;
    for (a, article) in articles.iter().enumerate() {
        let title = article.get("title").and_then(Value::as_str).unwrap_or("");
        let title = if title.is_empty() {
            a.to_string()
        } else {
            title.to_string()
        };
        let paragraphs = article.get("paragraphs").and_then(Value::as_array);
        for (p, para) in paragraphs.into_iter().flatten().enumerate() {
            let context = para.get("context").and_then(Value::as_str).unwrap_or("");
            if context.trim().is_empty() {
                return Err(RagError::file(
                    path,
                    format!("article {a} ({title}) paragraph {p}: empty or missing \"context\""),
                ));
            }
            f(Document {
                id: format!("{title}/{p}"),
                title: title.clone(),
                text: context.to_string(),
                offset: 0,
                path: path.to_path_buf(),
                line: 0,
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// `.txt` and `.md` files under `dir`, sorted by path.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| RagError::file(dir, e))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| RagError::file(dir, e))?;
    paths.sort();
    for p in paths {
        if p.is_dir() {
            text_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "txt" || e == "md") {
            out.push(p);
        }
    }
    Ok(())
}

fn read_folder(dir: &Path, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<usize> {
    let mut files = Vec::new();
    text_files(dir, &mut files)?;
    if files.is_empty() {
        return Err(RagError::file(dir, "no .txt or .md files in this folder"));
    }
    for path in &files {
        let id = path
            .strip_prefix(dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let title = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        read_text_file(path, &id, &title, f)?;
    }
    Ok(files.len())
}

/// Hands on a text file in segments cut at line ends; an empty file is an error.
fn read_text_file(
    path: &Path,
    id: &str,
    title: &str,
    f: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<()> {
    let mut reader = open(path)?;
    let (mut segment, mut seg_chars, mut offset) = (String::new(), 0usize, 0usize);
    let (mut line_no, mut seg_line, mut any_text) = (0usize, 1usize, false);
    let mut emit = |segment: &mut String, offset: usize, seg_line: usize| -> Result<()> {
        if segment.trim().is_empty() {
            segment.clear();
            return Ok(());
        }
        f(Document {
            id: id.to_string(),
            title: title.to_string(),
            text: std::mem::take(segment),
            offset,
            path: path.to_path_buf(),
            line: seg_line,
        })
    };
    loop {
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| RagError::line(path, line_no + 1, e))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        any_text |= !line.trim().is_empty();
        seg_chars += line.chars().count();
        segment.push_str(&line);
        if seg_chars >= SEGMENT_CHARS {
            emit(&mut segment, offset, seg_line)?;
            offset += seg_chars;
            seg_chars = 0;
            seg_line = line_no + 1;
        }
    }
    if !any_text {
        return Err(RagError::file(path, "empty document"));
    }
    emit(&mut segment, offset, seg_line)
}
