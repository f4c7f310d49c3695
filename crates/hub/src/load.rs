//! The decoder entry points that predate [`crate::load_model`]: a decoder's files in memory
//! ([`DecoderCheckpoint`], for trainers that make `Var`s of its tensors) and a built decoder
//! ([`LoadedDecoder`]). Both go through the same reading and registry dispatch as
//! [`crate::load_model`]; new code should call that.

use crate::checkpoint::{dtype_device, read_files, wrong_kind};
use crate::{HubError, ModelSource, Result};
use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use tasklm_models::{Architecture, DecoderModel, LlamaConfig, ModelArchitecture, ModelConfig};
use tasklm_nn::QuantizedWeights;
use tasklm_text::{GgufVocab, TextTokenizer};

/// Everything a decoder's model directory or GGUF file holds, in memory, not yet built.
pub struct DecoderCheckpoint {
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

/// Reads weights (dequantized to `dtype`), config and tokenizer.
pub fn load_checkpoint(
    source: &ModelSource,
    dtype: DType,
    device: &Device,
) -> Result<DecoderCheckpoint> {
    load_checkpoint_with(
        source,
        LoadOptions {
            dtype,
            quantized: false,
        },
        device,
    )
}

/// Like [`load_checkpoint`], with the options (quantized GGUF inference). An encoder is an
/// error naming the source.
pub fn load_checkpoint_with(
    source: &ModelSource,
    opts: LoadOptions,
    device: &Device,
) -> Result<DecoderCheckpoint> {
    let f = read_files(source, opts, device)?;
    match (f.architecture, f.config) {
        (ModelArchitecture::Decoder(architecture), ModelConfig::Decoder(config)) => {
            Ok(DecoderCheckpoint {
                source: f.source,
                architecture,
                config,
                tensors: f.tensors,
                quantized: f.quantized,
                tokenizer: f.tokenizer,
            })
        }
        (a, _) => Err(wrong_kind(
            source.path(),
            tasklm_models::ModelKind::Decoder,
            a.kind(),
        )),
    }
}

impl DecoderCheckpoint {
    /// Builds the decoder over this checkpoint's tensors (inference: no gradients tracked).
    pub fn into_decoder(self) -> Result<LoadedDecoder> {
        let (dtype, device) = dtype_device(&self.tensors);
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

/// Resolves `spec` and loads it as a decoder on the CPU with `opts` (a wrapper over
/// [`crate::load_model`]).
pub fn load_decoder_with(spec: &str, opts: LoadOptions, progress: bool) -> Result<LoadedDecoder> {
    let source = crate::resolve(spec, progress)?;
    crate::load_model(&source, opts, &Device::Cpu)?.into_decoder()
}
