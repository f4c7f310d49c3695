//! The trained retriever's directory as sentence-transformers writes one: the Hugging Face
//! `BertModel` files at the root (`config.json`; `model.safetensors` comes from the trainer),
//! the tokenizer files, `modules.json` with each module's folder (`1_Pooling/config.json`,
//! `2_Normalize` when the base has them), `sentence_bert_config.json` with the
//! `max_seq_length` trained with, `config_sentence_transformers.json`, and `tasklm.json`.

use super::model::Retriever;
use crate::common::encoder_runner::task_config;
use crate::common::tasklm_json::write_tasklm_json;
use serde_json::{json, Value};
use std::path::Path;
use tasklm_models::Pool;
use tasklm_train::TrainError;

fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn write_json(path: &Path, v: &Value) -> tasklm_train::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| io(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| io(path, e))
}

/// `modules.json` for a base without one: what tasklm embeds it with (mean pooling and
/// normalisation, [`tasklm_hub::embed::sentence_transformers_head`]'s default).
fn default_modules(normalize: bool) -> Value {
    let mut m = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if normalize {
        m.push(json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
    }
    Value::Array(m)
}

/// `1_Pooling/config.json` for `pool`.
fn pooling_config(pool: Pool, dims: usize) -> Value {
    json!({
        "word_embedding_dimension": dims,
        "pooling_mode_cls_token": pool == Pool::Cls,
        "pooling_mode_mean_tokens": pool == Pool::Mean,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false,
        "pooling_mode_lasttoken": pool == Pool::Last,
    })
}

/// Copies the files of `from` (a module folder of the base) into `to`.
fn copy_folder(from: &Path, to: &Path) -> tasklm_train::Result<()> {
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let src = entry.map_err(|e| io(from, e))?.path();
        if src.is_file() {
            if let Some(name) = src.file_name() {
                std::fs::copy(&src, to.join(name)).map_err(|e| io(&src, e))?;
            }
        }
    }
    Ok(())
}

/// Writes every file of the trained directory but the weights into `dir`.
pub fn write_st_files(dir: &Path, r: &Retriever, provenance: &Value) -> tasklm_train::Result<()> {
    let base = &r.base_dir;
    write_json(
        &dir.join("config.json"),
        &task_config(&r.config_json, "BertModel", None),
    )?;
    tasklm_hub::encoder::copy_tokenizer_files(base, dir).map_err(TrainError::objective)?;
    let modules =
        read_json(&base.join("modules.json")).unwrap_or_else(|| default_modules(r.normalize));
    write_json(&dir.join("modules.json"), &modules)?;
    for m in modules.as_array().into_iter().flatten() {
        let sub = m.get("path").and_then(Value::as_str).unwrap_or("");
        let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
        if sub.is_empty() || sub.contains("..") {
            continue;
        }
        let (from, to) = (base.join(sub), dir.join(sub));
        if from.is_dir() {
            copy_folder(&from, &to)?;
        } else if kind.ends_with(".Pooling") {
            std::fs::create_dir_all(&to).map_err(|e| io(&to, e))?;
            write_json(&to.join("config.json"), &pooling_config(r.pool, r.hidden))?;
        } else if kind.ends_with(".Normalize") && read_json(&base.join("modules.json")).is_none() {
            std::fs::create_dir_all(&to).map_err(|e| io(&to, e))?;
        }
    }
    let mut sbert = read_json(&base.join("sentence_bert_config.json"))
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"do_lower_case": false}));
    sbert["max_seq_length"] = json!(r.max_len);
    write_json(&dir.join("sentence_bert_config.json"), &sbert)?;
    let st_config = base.join("config_sentence_transformers.json");
    if st_config.is_file() {
        let to = dir.join("config_sentence_transformers.json");
        std::fs::copy(&st_config, &to).map_err(|e| io(&st_config, e))?;
    }
    write_tasklm_json(dir, provenance).map_err(TrainError::objective)
}
