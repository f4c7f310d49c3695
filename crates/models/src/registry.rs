//! The registry: which model a checkpoint holds, read from `config.json` (`architectures`, else
//! `model_type`) or from GGUF `general.architecture`, and the builder for it.
//!
//! A checkpoint's [`ModelArchitecture`] says both its [`ModelKind`] (decoder, encoder; the
//! contract its inputs and outputs follow) and the model file that builds it. A new family adds
//! one kind variant (seq2seq, vision), its architecture enum, a [`ModelConfig`] and a [`Model`]
//! variant, and one arm in each match below; the compiler lists every place that must learn it.
//! An unknown name is an error that lists every supported one.

use crate::decoder::llama::{Llama, LlamaConfig};
use crate::decoder::CausalLm;
use crate::encoder::bert::{Bert, BertConfig, BERT_PREFIX};
use crate::seq2seq::{Bart, BartConfig, Seq2SeqConfig, Seq2SeqModel, T5Config, T5};
use crate::vision::clip::{ClipVision, ClipVisionConfig};
use crate::vision::vit::{ViTConfig, Vit};
use crate::vision::{VisionConfig, VisionModel};
use crate::{ModelError, Result};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::Path;
use tasklm_nn::QuantizedWeights;

/// What kind of network a checkpoint holds: the contract its inputs and outputs follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Causal language model ([`CausalLm`]): token ids in, next-token logits out.
    Decoder,
    /// Bidirectional encoder ([`Bert`]): token ids and segments in, hidden states out.
    Encoder,
    /// Encoder-decoder (T5, BART, Marian: [`Seq2SeqModel`]): a source read bidirectionally, a target generated while
    /// cross-attending to it.
    Seq2Seq,
    /// Vision encoder ([`VisionModel`]: ViT, CLIP's vision tower): pixels in, patch hidden
    /// states out.
    Vision,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Decoder,
        ModelKind::Encoder,
        ModelKind::Seq2Seq,
        ModelKind::Vision,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Decoder => "decoder",
            Self::Encoder => "encoder",
            Self::Seq2Seq => "encoder-decoder",
            Self::Vision => "vision encoder",
        }
    }

    /// The name with its article, for messages: "a decoder", "an encoder".
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Decoder => "a decoder",
            Self::Encoder => "an encoder",
            Self::Seq2Seq => "an encoder-decoder",
            Self::Vision => "a vision encoder",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decoder architectures tasklm can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecoderArchitecture {
    Llama,
    Qwen2,
}

/// The decoder architectures under their first name (kept for the code that predates encoders
/// in the registry).
pub type Architecture = DecoderArchitecture;

/// A built decoder, behind the one contract generation and training use.
pub type DecoderModel = Box<dyn CausalLm + Send + Sync>;

impl DecoderArchitecture {
    const ALL: [DecoderArchitecture; 2] = [Self::Llama, Self::Qwen2];

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

    /// [`DecoderArchitecture::from_gguf`], with an unknown name an error naming `path` and the
    /// supported GGUF names.
    pub fn from_gguf_metadata(name: &str, path: &Path) -> Result<Self> {
        Self::from_gguf(name).ok_or_else(|| ModelError::UnknownArchitecture {
            path: path.into(),
            arch: name.to_string(),
            supported: Self::supported_gguf().join(", "),
        })
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

/// Encoder architectures tasklm can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncoderArchitecture {
    /// BERT and BERT-shaped checkpoints (MiniLM, ...): `BertModel` and every `BertFor...`
    /// task model, whose backbone sits under `bert.`.
    Bert,
}

impl EncoderArchitecture {
    const ALL: [EncoderArchitecture; 1] = [Self::Bert];

    /// From `config.json`'s `architectures[0]` (or `model_type`).
    pub fn from_hf(name: &str) -> Option<Self> {
        (name == "bert" || name == "BertModel" || name.starts_with("BertFor")).then_some(Self::Bert)
    }

    /// The names listed in errors.
    pub fn supported_hf() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .map(|a| match a {
                Self::Bert => "BertModel, BertFor*",
            })
            .collect()
    }
}

/// Encoder-decoder architectures tasklm can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seq2SeqArchitecture {
    /// T5, T5 v1.1 and Flan-T5 (`T5ForConditionalGeneration`).
    T5,
    /// `BartForConditionalGeneration`.
    Bart,
    /// `MarianMTModel` (opus-mt).
    Marian,
}

impl Seq2SeqArchitecture {
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "T5ForConditionalGeneration" | "t5" => Some(Self::T5),
            "BartForConditionalGeneration" | "bart" => Some(Self::Bart),
            "MarianMTModel" | "marian" => Some(Self::Marian),
            _ => None,
        }
    }

    pub fn supported_hf() -> Vec<&'static str> {
        vec![
            "T5ForConditionalGeneration",
            "BartForConditionalGeneration",
            "MarianMTModel",
        ]
    }
}

/// Vision encoder architectures tasklm can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VisionArchitecture {
    /// ViT: `ViTModel` (backbone at the top) and `ViTForImageClassification` (under `vit.`).
    Vit,
    /// CLIP's vision tower (`CLIPVisionModel`; weights under `vision_model.` or at the top).
    ClipVision,
}

impl VisionArchitecture {
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "ViTModel" | "ViTForImageClassification" | "vit" => Some(Self::Vit),
            "CLIPVisionModel" | "clip_vision_model" => Some(Self::ClipVision),
            _ => None,
        }
    }

    pub fn supported_hf() -> Vec<&'static str> {
        vec!["ViTModel", "ViTForImageClassification", "CLIPVisionModel"]
    }
}

/// Every architecture the registry knows, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelArchitecture {
    Decoder(DecoderArchitecture),
    Encoder(EncoderArchitecture),
    Seq2Seq(Seq2SeqArchitecture),
    Vision(VisionArchitecture),
}

impl ModelArchitecture {
    pub fn kind(self) -> ModelKind {
        match self {
            Self::Decoder(_) => ModelKind::Decoder,
            Self::Encoder(_) => ModelKind::Encoder,
            Self::Seq2Seq(_) => ModelKind::Seq2Seq,
            Self::Vision(_) => ModelKind::Vision,
        }
    }

    /// From one `architectures` entry or a `model_type`, whatever its kind.
    pub fn from_hf(name: &str) -> Option<Self> {
        DecoderArchitecture::from_hf(name)
            .map(Self::Decoder)
            .or_else(|| EncoderArchitecture::from_hf(name).map(Self::Encoder))
            .or_else(|| Seq2SeqArchitecture::from_hf(name).map(Self::Seq2Seq))
            .or_else(|| VisionArchitecture::from_hf(name).map(Self::Vision))
    }

    /// The supported `config.json` names of every kind, as errors list them:
    /// `LlamaForCausalLM, Qwen2ForCausalLM (decoders); BertModel, BertFor* (encoders)`.
    pub fn supported_hf() -> String {
        ModelKind::ALL
            .iter()
            .map(|k| {
                let names = match k {
                    ModelKind::Decoder => DecoderArchitecture::supported_hf(),
                    ModelKind::Encoder => EncoderArchitecture::supported_hf(),
                    ModelKind::Seq2Seq => Seq2SeqArchitecture::supported_hf(),
                    ModelKind::Vision => VisionArchitecture::supported_hf(),
                };
                format!("{} ({}s)", names.join(", "), k.name())
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Reads the architecture from a parsed `config.json` (`path` names it in errors): the
    /// first `architectures` entry, or `model_type` when there is no `architectures` list. An
    /// unknown name is an error listing every supported one; a config with neither field is an
    /// error too, never a guess.
    pub fn from_config(config: &Value, path: &Path) -> Result<Self> {
        let first = config
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        let name = first.or_else(|| config.get("model_type").and_then(Value::as_str));
        let Some(name) = name else {
            return Err(ModelError::invalid(
                path,
                format!(
                    "no `architectures` or `model_type`: cannot tell which model this is \
                     (supported: {})",
                    Self::supported_hf()
                ),
            ));
        };
        Self::from_hf(name).ok_or_else(|| ModelError::UnknownArchitecture {
            path: path.into(),
            arch: name.to_string(),
            supported: Self::supported_hf(),
        })
    }

    /// From GGUF `general.architecture`; GGUF files hold decoders only, and the error lists
    /// the GGUF names (`llama, qwen2`).
    pub fn from_gguf(name: &str, path: &Path) -> Result<Self> {
        DecoderArchitecture::from_gguf_metadata(name, path).map(Self::Decoder)
    }

    /// Parses and validates `config.json` as this architecture's config; errors name `path`.
    pub fn parse_config(self, config: &Value, path: &Path) -> Result<ModelConfig> {
        let bad = |m: String| ModelError::invalid(path, m);
        match self {
            Self::Decoder(_) => {
                let cfg: LlamaConfig = serde_json::from_value(config.clone())
                    .map_err(|e| bad(format!("not a decoder config this version reads: {e}")))?;
                cfg.validate().map_err(bad)?;
                Ok(ModelConfig::Decoder(cfg))
            }
            Self::Encoder(EncoderArchitecture::Bert) => {
                let cfg: BertConfig = serde_json::from_value(config.clone())
                    .map_err(|e| bad(format!("not a BERT config: {e}")))?;
                cfg.validate().map_err(bad)?;
                Ok(ModelConfig::Encoder(cfg))
            }
            Self::Seq2Seq(Seq2SeqArchitecture::T5) => {
                let cfg: T5Config = serde_json::from_value(config.clone())
                    .map_err(|e| bad(format!("not a T5 config: {e}")))?;
                cfg.validate().map_err(bad)?;
                Ok(ModelConfig::Seq2Seq(Seq2SeqConfig::T5(cfg)))
            }
            Self::Seq2Seq(arch @ (Seq2SeqArchitecture::Bart | Seq2SeqArchitecture::Marian)) => {
                let name = if arch == Seq2SeqArchitecture::Bart {
                    "BART"
                } else {
                    "Marian"
                };
                // Its flavor is read as the architecture was: the first `architectures`
                // entry, else `model_type`.
                let cfg: BartConfig = serde_json::from_value(config.clone())
                    .map_err(|e| bad(format!("not a {name} config: {e}")))?;
                cfg.validate().map_err(bad)?;
                Ok(ModelConfig::Seq2Seq(Seq2SeqConfig::Bart(cfg)))
            }
            Self::Vision(VisionArchitecture::Vit) => {
                let cfg: ViTConfig = serde_json::from_value(config.clone())
                    .map_err(|e| bad(format!("not a ViT config: {e}")))?;
                cfg.validate().map_err(bad)?;
                Ok(ModelConfig::Vision(VisionConfig::Vit(cfg)))
            }
            Self::Vision(VisionArchitecture::ClipVision) => {
                let cfg: ClipVisionConfig = serde_json::from_value(config.clone())
                    .map_err(|e| bad(format!("not a CLIP vision config: {e}")))?;
                cfg.validate().map_err(bad)?;
                Ok(ModelConfig::Vision(VisionConfig::Clip(cfg)))
            }
        }
    }

    /// Builds the model over `vb` (rooted at the checkpoint's top level, names as stored) with
    /// the linear layers found in `quantized` kept quantized (decoders only).
    pub fn build(
        self,
        config: &ModelConfig,
        vb: VarBuilder,
        quantized: Option<&QuantizedWeights>,
    ) -> candle_core::Result<Model> {
        match (self, config) {
            (Self::Decoder(a), ModelConfig::Decoder(c)) => {
                Ok(Model::Decoder(a.build_with(c, vb, quantized)?))
            }
            (Self::Encoder(EncoderArchitecture::Bert), ModelConfig::Encoder(c)) => {
                if quantized.is_some_and(|q| !q.is_empty()) {
                    candle_core::bail!("quantized weights are for decoders only");
                }
                Ok(Model::Encoder(Box::new(Bert::new(c, vb.pp(BERT_PREFIX))?)))
            }
            (Self::Seq2Seq(_), ModelConfig::Seq2Seq(c)) => {
                if quantized.is_some_and(|q| !q.is_empty()) {
                    candle_core::bail!("quantized weights are for decoders only");
                }
                let model = match c {
                    Seq2SeqConfig::T5(c) => Seq2SeqModel::T5(T5::new(c, vb)?),
                    Seq2SeqConfig::Bart(c) => Seq2SeqModel::Bart(Bart::new(c, vb)?),
                };
                Ok(Model::Seq2Seq(Box::new(model)))
            }
            (Self::Vision(a), ModelConfig::Vision(c)) => {
                if quantized.is_some_and(|q| !q.is_empty()) {
                    candle_core::bail!("quantized weights are for decoders only");
                }
                let model = match (a, c) {
                    (VisionArchitecture::Vit, VisionConfig::Vit(c)) => {
                        // `ViTForImageClassification` keeps the backbone under `vit.`, a bare
                        // `ViTModel` at the top.
                        let prefixed = format!("{}.embeddings.cls_token", Vit::PREFIX);
                        let vb = if vb.contains_tensor(&prefixed) {
                            vb.pp(Vit::PREFIX)
                        } else {
                            vb
                        };
                        VisionModel::Vit(Vit::new(c, vb)?)
                    }
                    (VisionArchitecture::ClipVision, VisionConfig::Clip(c)) => {
                        // `CLIPModel` checkpoints (and transformers 4's `CLIPVisionModel`) keep
                        // the tower under `vision_model.`; transformers 5 saves a
                        // `CLIPVisionModel` at the top.
                        let prefixed = format!("{}.embeddings.class_embedding", ClipVision::PREFIX);
                        let vb = if vb.contains_tensor(&prefixed) {
                            vb.pp(ClipVision::PREFIX)
                        } else {
                            vb
                        };
                        VisionModel::Clip(ClipVision::new(c, vb)?)
                    }
                    (a, c) => candle_core::bail!("a {a:?} vision model cannot be built from {c:?}"),
                };
                Ok(Model::Vision(Box::new(model)))
            }
            (a, c) => candle_core::bail!(
                "{} architecture ({a:?}) cannot be built from {} config",
                a.kind().with_article(),
                c.kind().with_article()
            ),
        }
    }
}

/// A checkpoint's config, parsed for its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Decoder(LlamaConfig),
    Encoder(BertConfig),
    Seq2Seq(Seq2SeqConfig),
    Vision(VisionConfig),
}

impl ModelConfig {
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Decoder(_) => ModelKind::Decoder,
            Self::Encoder(_) => ModelKind::Encoder,
            Self::Seq2Seq(_) => ModelKind::Seq2Seq,
            Self::Vision(_) => ModelKind::Vision,
        }
    }

    /// The context window in tokens (a vision encoder's: patches and `[CLS]`).
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Decoder(c) => c.max_position_embeddings,
            Self::Encoder(c) => c.max_position_embeddings,
            // T5's relative positions: no table bounds the length.
            Self::Seq2Seq(c) => c.max_positions().unwrap_or(usize::MAX),
            Self::Vision(c) => c.positions(),
        }
    }

    /// The token vocabulary; 0 for a vision encoder, which reads no tokens.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Decoder(c) => c.vocab_size,
            Self::Encoder(c) => c.vocab_size,
            Self::Seq2Seq(c) => c.vocab_size(),
            Self::Vision(_) => 0,
        }
    }
}

/// A built model, by kind.
pub enum Model {
    Decoder(DecoderModel),
    /// Boxed: a `Bert` is some 300 bytes, a boxed decoder 16.
    Encoder(Box<Bert>),
    Seq2Seq(Box<Seq2SeqModel>),
    Vision(Box<VisionModel>),
}

impl Model {
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Decoder(_) => ModelKind::Decoder,
            Self::Encoder(_) => ModelKind::Encoder,
            Self::Seq2Seq(_) => ModelKind::Seq2Seq,
            Self::Vision(_) => ModelKind::Vision,
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decoder(m) => write!(f, "Decoder(vocab {})", m.vocab_size()),
            Self::Encoder(m) => write!(f, "Encoder({:?})", m.config()),
            Self::Seq2Seq(m) => write!(f, "Seq2Seq({m:?})"),
            Self::Vision(m) => write!(f, "Vision({:?})", m.config()),
        }
    }
}

#[cfg(test)]
mod tests;
