//! JSON Lines: one JSON value per non-empty line, each error naming the file and line.

use crate::{DataError, Result};
use serde_json::Value;
use std::path::Path;

/// Every non-empty line of `path` parsed as JSON, with its 1-based line number.
pub fn read_jsonl(path: &Path) -> Result<Vec<(usize, Value)>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::File {
        path: path.into(),
        msg: e.to_string(),
    })?;
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
