//! Maps a checkpoint's architecture name to the model that builds it.

use crate::decoder::llama::{Llama, LlamaConfig};
use crate::decoder::CausalLm;
use candle_nn::VarBuilder;
use tasklm_nn::QuantizedWeights;

/// Decoder architectures tasklm can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

/// A built decoder, behind the one contract generation and training use.
pub type DecoderModel = Box<dyn CausalLm + Send + Sync>;

impl Architecture {
    const ALL: [Architecture; 2] = [Architecture::Llama, Architecture::Qwen2];

    /// From `config.json`'s `architectures[0]` (or `model_type`).
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "LlamaForCausalLM" | "llama" | "MistralForCausalLM" | "mistral" => Some(Self::Llama),
            "Qwen2ForCausalLM" | "qwen2" => Some(Self::Qwen2),
            _ => None,
        }
    }

    /// From GGUF `general.architecture`.
    pub fn from_gguf(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.gguf_name() == name)
    }

    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
        }
    }

    pub fn model_type(self) -> &'static str {
        self.gguf_name()
    }

    pub fn supported_gguf() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.gguf_name()).collect()
    }

    pub fn supported_hf() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.hf_class()).collect()
    }

    /// Builds the decoder for this architecture.
    pub fn build(self, cfg: &LlamaConfig, vb: VarBuilder) -> candle_core::Result<DecoderModel> {
        self.build_with(cfg, vb, None)
    }

    /// Builds the decoder with the linear layers found in `quantized` kept quantized.
    pub fn build_with(
        self,
        cfg: &LlamaConfig,
        vb: VarBuilder,
        quantized: Option<&QuantizedWeights>,
    ) -> candle_core::Result<DecoderModel> {
        let mut cfg = cfg.clone();
        cfg.qkv_bias = self == Self::Qwen2;
        Ok(Box::new(Llama::load(&cfg, vb, quantized)?))
    }
}
