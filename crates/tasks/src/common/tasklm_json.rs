//! `tasklm.json`, written beside every trained model: the task, the base model, the data files
//! with their sha256, the training arguments and the task's own settings (label prompt,
//! template, `max_seq_len`, `doc_stride`), read back so that every later use agrees.

use crate::{Result, TaskError};
use serde_json::Value;
use std::path::Path;
use tasklm_hub::ModelSource;

/// `tasklm.json` of a model directory, when it has one.
pub fn model_meta(source: &ModelSource) -> Option<Value> {
    let dir = match source {
        ModelSource::HfDir(dir) | ModelSource::Adapter { dir, .. } => dir,
        ModelSource::Gguf(_) => return None,
    };
    let text = std::fs::read_to_string(dir.join("tasklm.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A number a tasklm directory saved in `tasklm.json` (`max_seq_len`, `doc_stride`).
pub fn saved_setting(source: &ModelSource, key: &str) -> Option<usize> {
    model_meta(source)
        .and_then(|m| m.get(key)?.as_u64())
        .map(|n| n as usize)
}

/// Writes `tasklm.json` into `dir`.
pub fn write_tasklm_json(dir: &Path, v: &Value) -> Result<()> {
    let path = dir.join("tasklm.json");
    let text = serde_json::to_string_pretty(v).map_err(|e| TaskError::File {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    std::fs::write(&path, text + "\n").map_err(|e| TaskError::File {
        path,
        msg: e.to_string(),
    })
}
