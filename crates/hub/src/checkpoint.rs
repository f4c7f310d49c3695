//! One checkpoint type for every model kind, and the one entry point that loads it:
//! [`load_model`] reads a resolved source (Hugging Face directory or GGUF file), asks the
//! registry ([`ModelArchitecture`]) which model it holds, and builds it.
//!
//! The older entry points ([`crate::load_checkpoint`], [`crate::load_decoder`],
//! [`crate::load_encoder`], [`crate::model_kind`]) are thin wrappers over the same reading and
//! dispatch ([`read_files`]), kept while their callers move over.

use crate::load::vocab_from_gguf;
use crate::{HubError, LoadOptions, LoadedDecoder, ModelSource, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tasklm_models::seq2seq::Seq2SeqModel;
use tasklm_models::{
    gguf, weights, Bert, CausalLm, Model, ModelArchitecture, ModelConfig, ModelKind, BERT_PREFIX,
};
use tasklm_nn::QuantizedWeights;
use tasklm_text::TextTokenizer;

/// The `[CLS]` and `[SEP]` ids an encoder's inputs are built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSpecials {
    pub cls_id: u32,
    pub sep_id: u32,
}

/// A loaded model of any kind, with what it was loaded from.
///
/// `model` is built for inference over `tensors` (which share its storage: nothing is copied);
/// a trainer makes `Var`s of `tensors` and rebuilds through the registry.
pub struct Checkpoint {
    /// The directory or GGUF file it came from.
    pub source: ModelSource,
    /// What the registry read from `config.json` or GGUF metadata.
    pub architecture: ModelArchitecture,
    pub config: ModelConfig,
    /// `config.json` as written (None for GGUF), so a saved model keeps every key it had.
    pub config_json: Option<Value>,
    pub model: Model,
    pub tokenizer: TextTokenizer,
    /// `id2label` from `config.json` in id order, when the checkpoint has a trained head.
    pub labels: Option<Vec<String>>,
    /// The special ids an encoder needs; None for decoders.
    pub encoder_specials: Option<EncoderSpecials>,
    /// Tensors under the checkpoint's names (an encoder's backbone under `bert.`), dequantized
    /// except the matrices in `quantized`.
    pub tensors: HashMap<String, Tensor>,
    /// Matrices kept quantized (GGUF with [`LoadOptions::quantized`]).
    pub quantized: QuantizedWeights,
}

impl Checkpoint {
    pub fn kind(&self) -> ModelKind {
        self.architecture.kind()
    }

    /// The directory or file the checkpoint was read from.
    pub fn dir(&self) -> &Path {
        self.source.path()
    }

    /// The decoder, when this is one.
    pub fn decoder(&self) -> Option<&(dyn CausalLm + Send + Sync)> {
        match &self.model {
            Model::Decoder(m) => Some(m.as_ref()),
            Model::Encoder(_) | Model::Seq2Seq(_) | Model::Vision(_) => None,
        }
    }

    /// The encoder backbone, when this is one.
    pub fn encoder(&self) -> Option<&Bert> {
        match &self.model {
            Model::Encoder(m) => Some(m.as_ref()),
            Model::Decoder(_) | Model::Seq2Seq(_) | Model::Vision(_) => None,
        }
    }

    /// The encoder-decoder, when this is one.
    pub fn seq2seq(&self) -> Option<&Seq2SeqModel> {
        match &self.model {
            Model::Seq2Seq(m) => Some(m.as_ref()),
            Model::Decoder(_) | Model::Encoder(_) | Model::Vision(_) => None,
        }
    }

    /// The decoder with its tokenizer, or an error naming the source when this is not one.
    pub fn into_decoder(self) -> Result<LoadedDecoder> {
        let path = self.source.path().to_path_buf();
        match (self.model, self.config) {
            (Model::Decoder(model), ModelConfig::Decoder(config)) => Ok(LoadedDecoder {
                model,
                tokenizer: self.tokenizer,
                config,
                source: self.source,
            }),
            (model, _) => Err(wrong_kind(&path, ModelKind::Decoder, model.kind())),
        }
    }
}

pub(crate) fn wrong_kind(path: &Path, want: ModelKind, got: ModelKind) -> HubError {
    HubError::file(
        path,
        format!(
            "this checkpoint holds {}, and {} is needed here",
            got.with_article(),
            want.with_article()
        ),
    )
}

/// Loads the model a resolved source holds, whatever its kind, on `device`.
///
/// This is the entry point to use: the kind and architecture come from the registry
/// (`config.json` `architectures` / `model_type`, or GGUF `general.architecture`), an unknown
/// one being an error that lists the supported ones. `opts.quantized` needs a GGUF file.
pub fn load_model(source: &ModelSource, opts: LoadOptions, device: &Device) -> Result<Checkpoint> {
    if opts.quantized && !source.is_gguf() {
        return Err(HubError::file(
            source.path(),
            "--quantized needs a GGUF model",
        ));
    }
    let files = read_files(source, opts, device)?;
    let dtype = files
        .tensors
        .values()
        .next()
        .map(|t| t.dtype())
        .unwrap_or(opts.dtype);
    let vb = VarBuilder::from_tensors(files.tensors.clone(), dtype, device);
    let quantized = (!files.quantized.is_empty()).then_some(&files.quantized);
    let model = files
        .architecture
        .build(&files.config, vb, quantized)
        .map_err(|e| HubError::file(source.path(), format!("building the model: {e}")))?;
    let labels = files.config_json.as_ref().and_then(labels_of);
    Ok(Checkpoint {
        source: files.source,
        architecture: files.architecture,
        config: files.config,
        config_json: files.config_json,
        model,
        tokenizer: files.tokenizer,
        labels,
        encoder_specials: files.encoder_specials,
        tensors: files.tensors,
        quantized: files.quantized,
    })
}

/// What a checkpoint's files hold, read and dispatched by kind but not built.
#[derive(Clone)]
pub(crate) struct Files {
    pub source: ModelSource,
    pub architecture: ModelArchitecture,
    pub config: ModelConfig,
    pub config_json: Option<Value>,
    pub tensors: HashMap<String, Tensor>,
    pub quantized: QuantizedWeights,
    pub tokenizer: TextTokenizer,
    pub encoder_specials: Option<EncoderSpecials>,
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| HubError::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| HubError::file(path, format!("invalid JSON: {e}")))
}

/// The kind of a source, from its config alone (no weights are read). GGUF files hold decoders
/// only, so their header is not read here.
pub(crate) fn kind_of(source: &ModelSource) -> Result<ModelKind> {
    match source {
        ModelSource::Adapter { base, .. } => kind_of(base),
        ModelSource::Gguf(_) => Ok(ModelKind::Decoder),
        ModelSource::HfDir(dir) => {
            let path = dir.join("config.json");
            Ok(ModelArchitecture::from_config(&read_json(&path)?, &path)?.kind())
        }
    }
}

/// Reads weights (to `opts.dtype`), config and tokenizer, dispatching on the registry.
pub(crate) fn read_files(
    source: &ModelSource,
    opts: LoadOptions,
    device: &Device,
) -> Result<Files> {
    match source {
        ModelSource::Adapter { dir, base } => {
            // An adapter trained over a quantized GGUF base runs over it quantized, as trained.
            let quantized = base.is_gguf() && crate::adapter::trained_on_quantized_base(dir);
            let opts = LoadOptions {
                quantized: opts.quantized || quantized,
                ..opts
            };
            let mut files = crate::shared_base::base_files(base, opts, device)?;
            let adapter = crate::adapter::read_adapter(dir, device)?;
            let file = dir.join(crate::adapter::ADAPTER_WEIGHTS);
            crate::adapter::apply_adapter(
                &mut files.tensors,
                &mut files.quantized,
                &adapter,
                &file,
            )?;
            if dir.join("tokenizer.json").is_file() {
                files.tokenizer = TextTokenizer::from_dir(dir)?;
            }
            // A trained encoder adapter keeps its head's labels in its own config.json.
            if files.config_json.is_some() && dir.join("config.json").is_file() {
                files.config_json = Some(read_json(&dir.join("config.json"))?);
            }
            files.source = source.clone();
            Ok(files)
        }
        ModelSource::Gguf(path) => {
            let ck = gguf::load_with(path, opts.dtype, device, opts.quantized)?;
            let vocab = vocab_from_gguf(&ck.metadata)?;
            let tokenizer = TextTokenizer::from_gguf(&vocab)
                .map_err(|e| HubError::file(path, format!("building its tokenizer: {e}")))?;
            Ok(Files {
                source: source.clone(),
                architecture: ModelArchitecture::Decoder(ck.architecture),
                config: ModelConfig::Decoder(ck.config),
                config_json: None,
                tensors: ck.tensors,
                quantized: ck.quantized,
                tokenizer,
                encoder_specials: None,
            })
        }
        ModelSource::HfDir(dir) => {
            let cfg_path = dir.join("config.json");
            let json = read_json(&cfg_path)?;
            let architecture = ModelArchitecture::from_config(&json, &cfg_path)?;
            if architecture.kind() == ModelKind::Vision {
                // A vision encoder has no tokenizer: `crate::vision::load_vision` reads it.
                return Err(HubError::file(
                    &cfg_path,
                    "this checkpoint holds a vision encoder, which is loaded as one \
                     (tasklm_hub::load_vision), not as a text model",
                ));
            }
            let config = architecture.parse_config(&json, &cfg_path)?;
            let mut tensors = weights::load_safetensors_dir(dir, opts.dtype, device)?;
            let tokenizer = TextTokenizer::from_dir(dir)?;
            let encoder_specials = match architecture.kind() {
                ModelKind::Decoder | ModelKind::Seq2Seq | ModelKind::Vision => None,
                ModelKind::Encoder => {
                    tensors = bert_names(tensors, dir)?;
                    Some(EncoderSpecials {
                        cls_id: special_id(dir, &tokenizer, "cls_token", "[CLS]")?,
                        sep_id: special_id(dir, &tokenizer, "sep_token", "[SEP]")?,
                    })
                }
            };
            Ok(Files {
                source: source.clone(),
                architecture,
                config,
                config_json: Some(json),
                tensors,
                quantized: QuantizedWeights::new(),
                tokenizer,
                encoder_specials,
            })
        }
    }
}

/// An encoder's tensors under `bert.` (a bare `BertModel` is renamed) and the head names
/// (`classifier.`, `qa_outputs.`); buffers (`position_ids`) and pretraining heads (`cls.`) are
/// left out.
fn bert_names(raw: HashMap<String, Tensor>, dir: &Path) -> Result<HashMap<String, Tensor>> {
    let bare = raw.contains_key("embeddings.word_embeddings.weight");
    let prefixed = format!("{BERT_PREFIX}.embeddings.word_embeddings.weight");
    if !bare && !raw.contains_key(&prefixed) {
        return Err(HubError::file(
            dir.join("model.safetensors"),
            "no `embeddings.word_embeddings.weight` (or `bert.` ...): not a BERT checkpoint",
        ));
    }
    Ok(raw
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
        .collect())
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

/// `id2label` of a `config.json`, in id order.
pub(crate) fn labels_of(config: &Value) -> Option<Vec<String>> {
    let map = config.get("id2label")?.as_object()?;
    let mut pairs: Vec<(usize, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
        .collect();
    pairs.sort();
    Some(pairs.into_iter().map(|(_, v)| v).collect())
}

/// The dtype and device of a tensor map (f32 on the CPU when empty).
pub(crate) fn dtype_device(tensors: &HashMap<String, Tensor>) -> (DType, Device) {
    tensors
        .values()
        .next()
        .map(|t| (t.dtype(), t.device().clone()))
        .unwrap_or((DType::F32, Device::Cpu))
}
