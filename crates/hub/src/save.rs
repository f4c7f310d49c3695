//! Writing a model directory in the Hugging Face layout, so transformers loads what tasklm
//! trains: `config.json`, `generation_config.json`, `tokenizer.json` and
//! `tokenizer_config.json` (with the chat template). The weights (`model.safetensors`) are
//! written by the trainer, which owns them.

use crate::{HubError, Result};
use serde_json::{json, Value};
use std::path::Path;
use tasklm_models::{Architecture, LlamaConfig};
use tasklm_text::TextTokenizer;

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| HubError::file(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| HubError::file(path, e))
}

/// `config.json` for `cfg`, with the keys transformers expects of this architecture.
pub fn hf_config(arch: Architecture, cfg: &LlamaConfig) -> Result<Value> {
    let mut v = serde_json::to_value(cfg).map_err(|e| HubError::file("config.json", e))?;
    if let Value::Object(o) = &mut v {
        o.insert("architectures".into(), json!([arch.hf_class()]));
        o.insert("model_type".into(), json!(arch.model_type()));
        o.insert("hidden_act".into(), json!("silu"));
        o.insert("torch_dtype".into(), json!("float32"));
        o.insert("num_key_value_heads".into(), json!(cfg.n_kv_heads()));
        o.insert("head_dim".into(), json!(cfg.head_dim()));
        if arch == Architecture::Qwen2 {
            o.remove("attention_bias");
            o.insert("use_sliding_window".into(), json!(false));
        }
        o.retain(|_, v| !v.is_null());
    }
    Ok(v)
}

/// Writes the config, generation config and tokenizer files of a model into `dir`.
pub fn write_model_files(
    dir: &Path,
    arch: Architecture,
    cfg: &LlamaConfig,
    tok: &TextTokenizer,
) -> Result<()> {
    write_json(&dir.join("config.json"), &hf_config(arch, cfg)?)?;
    write_tokenizer_files(dir, cfg, tok)
}

/// Writes the tokenizer files and generation config of a model into `dir`: what a LoRA
/// adapter directory holds beside its adapter.
pub fn write_tokenizer_files(dir: &Path, cfg: &LlamaConfig, tok: &TextTokenizer) -> Result<()> {
    let tok_path = dir.join("tokenizer.json");
    tok.inner()
        .save(&tok_path, false)
        .map_err(|e| HubError::file(&tok_path, e))?;
    let mut tc = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": cfg.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    for (key, token) in [
        ("bos_token", &tok.bos_token),
        ("eos_token", &tok.eos_token),
        ("pad_token", &tok.pad_token),
    ] {
        if let Some(t) = token {
            tc[key] = json!(t);
        }
    }
    if let Some(t) = &tok.chat_template {
        tc["chat_template"] = json!(t);
    }
    write_json(&dir.join("tokenizer_config.json"), &tc)?;
    let mut gen = json!({ "eos_token_id": tok.eos_ids });
    if let Some(id) = tok.bos_token.as_deref().and_then(|t| tok.token_to_id(t)) {
        gen["bos_token_id"] = json!(id);
    }
    gen["pad_token_id"] = json!(tok.pad_id());
    write_json(&dir.join("generation_config.json"), &gen)
}
