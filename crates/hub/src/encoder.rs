//! The encoder entry points that predate [`crate::load_model`]: a BERT-family checkpoint (a
//! `BertModel` or a `BertFor...` directory) in memory with its tokenizer, not yet built, and
//! telling encoders from decoders. Both go through the same reading and registry dispatch as
//! [`crate::load_model`]; new code should call that.

use crate::checkpoint::{kind_of, labels_of, read_files, wrong_kind};
use crate::{LoadOptions, ModelSource, Result};
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tasklm_models::{BertConfig, ModelConfig};
use tasklm_text::TextTokenizer;

/// Prefix of the backbone's weights in a `BertFor...` checkpoint; a bare `BertModel` has none
/// and is renamed to it on load, so every model tasklm trains is saved under transformers'
/// task-model names.
pub use tasklm_models::BERT_PREFIX;

/// What kind of network a checkpoint holds (the registry's kind).
pub use tasklm_models::ModelKind;

/// The kind the registry reads from `config.json` (`architectures`, else `model_type`); an
/// unknown architecture is an error listing the supported ones. GGUF files are always decoders.
pub fn model_kind(source: &ModelSource) -> Result<ModelKind> {
    kind_of(source)
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
        labels_of(&self.config_json)
    }
}

/// Reads a BERT-family directory: config, weights (f32, backbone renamed under `bert.`) and
/// tokenizer. A decoder or a GGUF file is an error naming the source.
pub fn load_encoder(source: &ModelSource, device: &Device) -> Result<EncoderCheckpoint> {
    if let ModelSource::Gguf(path) = source {
        return Err(crate::HubError::file(
            path,
            "an encoder must be a Hugging Face directory (config.json, model.safetensors)",
        ));
    }
    let f = read_files(source, LoadOptions::default(), device)?;
    match (f.config, f.config_json, f.encoder_specials) {
        (ModelConfig::Encoder(config), Some(config_json), Some(sp)) => Ok(EncoderCheckpoint {
            source: f.source,
            config,
            config_json,
            tensors: f.tensors,
            tokenizer: f.tokenizer,
            cls_id: sp.cls_id,
            sep_id: sp.sep_id,
        }),
        _ => Err(wrong_kind(
            source.path(),
            ModelKind::Encoder,
            f.architecture.kind(),
        )),
    }
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
            std::fs::copy(&src, to.join(name)).map_err(|e| crate::HubError::file(&src, e))?;
        }
    }
    Ok(())
}
