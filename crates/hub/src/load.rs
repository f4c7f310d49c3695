//! Loading a checkpoint (weights, config, tokenizer) from a resolved source, and building the
//! decoder from it.

use crate::{HubError, ModelSource, Result};
use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use tasklm_models::{gguf, weights, Architecture, DecoderModel, LlamaConfig};
use tasklm_nn::QuantizedWeights;
use tasklm_text::{GgufVocab, TextTokenizer};

/// Everything a model directory or GGUF file holds, in memory.
pub struct Checkpoint {
    pub source: ModelSource,
    pub architecture: Architecture,
    pub config: LlamaConfig,
    /// Tensors under Hugging Face names.
    pub tensors: HashMap<String, Tensor>,
    /// Weight matrices kept quantized (GGUF with `quantized` loading only).
    pub quantized: QuantizedWeights,
    pub tokenizer: TextTokenizer,
}

/// How to load a checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub dtype: DType,
    /// Run a GGUF's quantized matrices as stored (fast inference, no training).
    pub quantized: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            quantized: false,
        }
    }
}

/// A decoder ready to run, with its tokenizer.
pub struct LoadedDecoder {
    pub model: DecoderModel,
    pub tokenizer: TextTokenizer,
    pub config: LlamaConfig,
    pub source: ModelSource,
}

/// The tokenizer fields of a GGUF file's metadata (absent or mistyped fields left empty).
pub fn vocab_from_gguf(md: &HashMap<String, Value>) -> Result<GgufVocab> {
    let s = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
    let u = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
    let strings = |k: &str| -> Vec<String> {
        md.get(k)
            .and_then(|v| v.to_vec().ok())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.to_string().ok().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let types = md
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|a| a.iter().map(|v| v.to_i32().unwrap_or(1)).collect())
        .unwrap_or_default();
    Ok(GgufVocab {
        model: s("tokenizer.ggml.model").unwrap_or_default(),
        pre: s("tokenizer.ggml.pre"),
        tokens: strings("tokenizer.ggml.tokens"),
        token_types: types,
        merges: strings("tokenizer.ggml.merges"),
        bos_id: u("tokenizer.ggml.bos_token_id"),
        eos_id: u("tokenizer.ggml.eos_token_id"),
        unk_id: u("tokenizer.ggml.unknown_token_id"),
        pad_id: u("tokenizer.ggml.padding_token_id"),
        add_bos: md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false),
        chat_template: s("tokenizer.chat_template"),
    })
}

fn read_config(dir: &std::path::Path) -> Result<(LlamaConfig, Architecture)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| HubError::file(&path, e))?;
    let cfg: LlamaConfig = serde_json::from_str(&text).map_err(|e| {
        HubError::file(
            &path,
            format!("not a decoder config this version reads: {e}"),
        )
    })?;
    let name = cfg
        .architectures
        .first()
        .cloned()
        .or_else(|| cfg.model_type.clone())
        .unwrap_or_default();
    let arch = Architecture::from_hf(&name).ok_or_else(|| {
        HubError::Model(tasklm_models::ModelError::UnknownArchitecture {
            path: path.clone(),
            arch: name.clone(),
            supported: Architecture::supported_hf().join(", "),
        })
    })?;
    cfg.validate().map_err(|m| HubError::file(&path, m))?;
    Ok((cfg, arch))
}

/// Reads weights (dequantized to `dtype`), config and tokenizer.
pub fn load_checkpoint(source: &ModelSource, dtype: DType, device: &Device) -> Result<Checkpoint> {
    load_checkpoint_with(
        source,
        LoadOptions {
            dtype,
            quantized: false,
        },
        device,
    )
}

/// Like [`load_checkpoint`], with the options (quantized GGUF inference).
pub fn load_checkpoint_with(
    source: &ModelSource,
    opts: LoadOptions,
    device: &Device,
) -> Result<Checkpoint> {
    let dtype = opts.dtype;
    match source {
        ModelSource::Gguf(path) => {
            let ck = gguf::load_with(path, dtype, device, opts.quantized)?;
            let vocab = vocab_from_gguf(&ck.metadata)?;
            let tokenizer = TextTokenizer::from_gguf(&vocab)
                .map_err(|e| HubError::file(path, format!("building its tokenizer: {e}")))?;
            Ok(Checkpoint {
                source: source.clone(),
                architecture: ck.architecture,
                config: ck.config,
                tensors: ck.tensors,
                quantized: ck.quantized,
                tokenizer,
            })
        }
        ModelSource::HfDir(dir) => {
            let (config, architecture) = read_config(dir)?;
            let tensors = weights::load_safetensors_dir(dir, dtype, device)?;
            let tokenizer = TextTokenizer::from_dir(dir)?;
            Ok(Checkpoint {
                source: source.clone(),
                architecture,
                config,
                tensors,
                quantized: QuantizedWeights::new(),
                tokenizer,
            })
        }
    }
}

impl Checkpoint {
    /// Builds the decoder over this checkpoint's tensors (inference: no gradients tracked).
    pub fn into_decoder(self) -> Result<LoadedDecoder> {
        let device = self
            .tensors
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        let dtype = self
            .tensors
            .values()
            .next()
            .map(|t| t.dtype())
            .unwrap_or(DType::F32);
        let vb = VarBuilder::from_tensors(self.tensors, dtype, &device);
        let quantized = (!self.quantized.is_empty()).then_some(&self.quantized);
        let model = self
            .architecture
            .build_with(&self.config, vb, quantized)
            .map_err(|e| HubError::file(self.source.path(), format!("building the model: {e}")))?;
        Ok(LoadedDecoder {
            model,
            tokenizer: self.tokenizer,
            config: self.config,
            source: self.source,
        })
    }
}

/// Resolves `spec` and loads it as a decoder in f32 on the CPU.
pub fn load_decoder(spec: &str, progress: bool) -> Result<LoadedDecoder> {
    load_decoder_with(spec, LoadOptions::default(), progress)
}

/// Resolves `spec` and loads it as a decoder on the CPU with `opts`.
pub fn load_decoder_with(spec: &str, opts: LoadOptions, progress: bool) -> Result<LoadedDecoder> {
    let source = crate::resolve(spec, progress)?;
    if opts.quantized && !matches!(source, ModelSource::Gguf(_)) {
        return Err(HubError::file(
            source.path(),
            "--quantized needs a GGUF model",
        ));
    }
    load_checkpoint_with(&source, opts, &Device::Cpu)?.into_decoder()
}
