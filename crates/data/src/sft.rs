//! Instruction SFT records: `{"prompt", "completion"}`, or the Alpaca layout
//! `{"instruction", "input", "output"}`. The loss covers the completion and the final EOS only.

use crate::collate::{Features, IGNORE_INDEX};
use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;
use tasklm_text::TextTokenizer;

#[derive(Clone, Debug, PartialEq)]
pub struct SftRecord {
    pub prompt: String,
    pub completion: String,
    /// 1-based line in the source file, for messages.
    pub line: usize,
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

/// The Alpaca prompt (the Stanford Alpaca template without its preamble).
fn alpaca_prompt(instruction: &str, input: &str) -> String {
    if input.trim().is_empty() {
        format!("### Instruction:\n{instruction}\n\n### Response:\n")
    } else {
        format!("### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
    }
}

/// Reads one record per non-empty line.
pub fn read_sft_jsonl(path: &Path) -> Result<Vec<SftRecord>> {
    parse_sft_jsonl(path, &crate::jsonl::read_text(path)?)
}

/// [`read_sft_jsonl`] over the file's text; `path` names it in errors.
pub fn parse_sft_jsonl(path: &Path, text: &str) -> Result<Vec<SftRecord>> {
    let mut out = Vec::new();
    for (line_no, v) in crate::jsonl::parse_jsonl(path, text)? {
        let err = |msg: String| DataError::record(path, line_no, msg);
        let rec = match (field(&v, "prompt"), field(&v, "completion")) {
            (Some(p), Some(c)) => SftRecord { prompt: p.into(), completion: c.into(), line: line_no },
            _ => match (field(&v, "instruction"), field(&v, "output")) {
                (Some(ins), Some(o)) => SftRecord {
                    prompt: alpaca_prompt(ins, field(&v, "input").unwrap_or("")),
                    completion: o.into(),
                    line: line_no,
                },
                _ => {
                    return Err(err(
                        "expected string fields `prompt` and `completion` (or `instruction`, `input`, `output`)"
                            .into(),
                    ))
                }
            },
        };
        out.push(rec);
    }
    if out.is_empty() {
        return Err(DataError::File {
            path: path.into(),
            msg: "no records".into(),
        });
    }
    Ok(out)
}

/// What to do with a record longer than `max_len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// Cut tokens from the start of the prompt.
    Left,
    /// Skip the record.
    Drop,
}

/// Counts of records changed by encoding, reported to the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub truncated: usize,
    pub dropped: usize,
}

/// Encodes `prompt + completion + EOS` as one sequence, tokenized jointly (so the boundary
/// tokenizes as it will at inference), with labels on the completion and EOS only.
/// Returns None when the record is dropped.
pub fn encode_sft(
    tok: &TextTokenizer,
    rec: &SftRecord,
    max_len: usize,
    trunc: Truncation,
    stats: &mut EncodeStats,
) -> Result<Option<Features>> {
    let eos = *tok.eos_ids.first().ok_or_else(|| {
        DataError::Invalid("the tokenizer has no EOS token; SFT needs one".into())
    })?;
    let prompt_ids = tok.encode(&rec.prompt, true)?;
    let mut ids = tok.encode(&format!("{}{}", rec.prompt, rec.completion), true)?;
    // Tokens that straddle the boundary belong to the completion.
    let n_prompt = prompt_ids
        .iter()
        .zip(&ids)
        .take_while(|(a, b)| a == b)
        .count();
    // A completion that already ends in a stop token (T0 data ends with `<|endoftext|>`)
    // keeps it as its end; otherwise EOS is appended, so the model learns to stop.
    if !ids.last().is_some_and(|&last| tok.is_eos(last)) || ids.len() <= n_prompt {
        ids.push(eos);
    }
    let mut labels: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if i < n_prompt {
                IGNORE_INDEX
            } else {
                i64::from(t)
            }
        })
        .collect();
    if labels.iter().all(|&l| l == IGNORE_INDEX) || n_prompt == 0 {
        return Err(DataError::Invalid(format!(
            "record at line {}: the prompt must be non-empty and the completion supervised",
            rec.line
        )));
    }
    if ids.len() > max_len {
        let n_completion = ids.len() - n_prompt;
        // Keep at least one prompt token so the first completion token has a context.
        if trunc == Truncation::Drop || n_completion + 1 > max_len {
            stats.dropped += 1;
            return Ok(None);
        }
        let cut = ids.len() - max_len;
        ids.drain(..cut);
        labels.drain(..cut);
        stats.truncated += 1;
    }
    Ok(Some(Features::new(ids, labels)))
}
