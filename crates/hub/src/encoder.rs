//! Loading a BERT-family encoder checkpoint (a `BertModel` or a `BertFor...` directory) with
//! its tokenizer, and telling encoders from decoders.

use crate::{HubError, ModelSource, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tasklm_models::{weights, BertConfig};
use tasklm_text::TextTokenizer;

/// Prefix of the backbone's weights in a `BertFor...` checkpoint; a bare `BertModel` has none
/// and is renamed to it on load, so every model tasklm trains is saved under transformers'
/// task-model names.
pub const BERT_PREFIX: &str = "bert";

/// What kind of network a checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Decoder,
    Encoder,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| HubError::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| HubError::file(path, format!("invalid JSON: {e}")))
}

/// Encoder when `config.json` says `model_type: "bert"` or names a `Bert...` architecture;
/// decoder otherwise (GGUF files are always decoders here).
pub fn model_kind(source: &ModelSource) -> Result<ModelKind> {
    let ModelSource::HfDir(dir) = source else {
        return Ok(ModelKind::Decoder);
    };
    let cfg = read_json(&dir.join("config.json"))?;
    let is_bert = cfg.get("model_type").and_then(Value::as_str) == Some("bert")
        || cfg
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with("Bert"));
    Ok(if is_bert {
        ModelKind::Encoder
    } else {
        ModelKind::Decoder
    })
}

/// An encoder checkpoint in memory.
pub struct EncoderCheckpoint {
    pub source: ModelSource,
    pub config: BertConfig,
    /// `config.json` as written, so that a saved model keeps every key it had.
    pub config_json: Value,
    /// Float tensors under `bert.` (backbone) and the head names (`classifier.`, `qa_outputs.`);
    /// buffers (`position_ids`) and pretraining heads (`cls.`) are left out.
    pub tensors: HashMap<String, Tensor>,
    pub tokenizer: TextTokenizer,
    pub cls_id: u32,
    pub sep_id: u32,
}

impl EncoderCheckpoint {
    /// The directory the checkpoint was read from.
    pub fn dir(&self) -> &Path {
        self.source.path()
    }

    /// `id2label` from `config.json` in id order, when the checkpoint has a trained head.
    pub fn labels(&self) -> Option<Vec<String>> {
        let map = self.config_json.get("id2label")?.as_object()?;
        let mut pairs: Vec<(usize, String)> = map
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
            .collect();
        pairs.sort();
        Some(pairs.into_iter().map(|(_, v)| v).collect())
    }
}

/// A special token's id: the name `tokenizer_config.json` gives under `key`, else `default`.
fn special_id(dir: &Path, tok: &TextTokenizer, key: &str, default: &str) -> Result<u32> {
    let path = dir.join("tokenizer_config.json");
    let name = if path.exists() {
        read_json(&path)?
            .get(key)
            .and_then(|v| v.as_str().or_else(|| v.get("content")?.as_str()))
            .map(String::from)
    } else {
        None
    }
    .unwrap_or_else(|| default.to_string());
    tok.token_to_id(&name).ok_or_else(|| {
        HubError::file(
            dir.join("tokenizer.json"),
            format!("{key} `{name}` is not in the vocabulary"),
        )
    })
}

/// Reads a BERT-family directory: config, weights (f32, backbone renamed under `bert.`) and
/// tokenizer.
pub fn load_encoder(source: &ModelSource, device: &Device) -> Result<EncoderCheckpoint> {
    let ModelSource::HfDir(dir) = source else {
        return Err(HubError::file(
            source.path(),
            "an encoder must be a Hugging Face directory (config.json, model.safetensors)",
        ));
    };
    let cfg_path = dir.join("config.json");
    let config_json = read_json(&cfg_path)?;
    let config: BertConfig = serde_json::from_value(config_json.clone())
        .map_err(|e| HubError::file(&cfg_path, format!("not a BERT config: {e}")))?;
    config
        .validate()
        .map_err(|m| HubError::file(&cfg_path, m))?;
    let raw = weights::load_safetensors_dir(dir, DType::F32, device)?;
    let bare = raw.contains_key("embeddings.word_embeddings.weight");
    let prefixed = format!("{BERT_PREFIX}.embeddings.word_embeddings.weight");
    if !bare && !raw.contains_key(&prefixed) {
        return Err(HubError::file(
            dir.join("model.safetensors"),
            "no `embeddings.word_embeddings.weight` (or `bert.` ...): not a BERT checkpoint",
        ));
    }
    let tensors = raw
        .into_iter()
        .filter(|(k, _)| !k.ends_with("position_ids") && !k.starts_with("cls."))
        .map(|(k, t)| {
            let name = if bare {
                format!("{BERT_PREFIX}.{k}")
            } else {
                k
            };
            (name, t)
        })
        .collect();
    let tokenizer = TextTokenizer::from_dir(dir)?;
    let cls_id = special_id(dir, &tokenizer, "cls_token", "[CLS]")?;
    let sep_id = special_id(dir, &tokenizer, "sep_token", "[SEP]")?;
    Ok(EncoderCheckpoint {
        source: source.clone(),
        config,
        config_json,
        tensors,
        tokenizer,
        cls_id,
        sep_id,
    })
}

/// Copies the tokenizer files of `from` (those present) into `to`.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<()> {
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ] {
        let src = from.join(name);
        if src.exists() {
            std::fs::copy(&src, to.join(name)).map_err(|e| HubError::file(&src, e))?;
        }
    }
    Ok(())
}
