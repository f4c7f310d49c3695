//! `config.json` of a BART or Marian (opus-mt) checkpoint, with transformers' key names: both
//! are the same post-norm encoder-decoder, with learned positions and an embedding layer norm
//! (BART) or sinusoidal positions and none (Marian).

use serde::{Deserialize, Deserializer, Serialize};

/// A token id written as an int or a list of ints (transformers' `eos_token_id: int | list`):
/// the first.
fn first_id<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u32),
        Many(Vec<u32>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        Some(OneOrMany::One(id)) => Some(id),
        Some(OneOrMany::Many(ids)) => ids.first().copied(),
        None => None,
    })
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
}
fn default_max_pos() -> usize {
    1024
}
fn default_true() -> bool {
    true
}

/// Which of the two post-norm encoder-decoders a config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BartFlavor {
    /// `BartForConditionalGeneration`: learned positions offset by 2, `layernorm_embedding`.
    Bart,
    /// `MarianMTModel`: sinusoidal positions, no embedding layer norm, pad never generated.
    Marian,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BartConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    /// `gelu` (exact), `gelu_new`, `relu`, `swish` / `silu` (opus-mt): any `nn::Activation`.
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default = "default_dropout")]
    pub dropout: f32,
    #[serde(default)]
    pub attention_dropout: f32,
    #[serde(default)]
    pub activation_dropout: f32,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Token embeddings are multiplied by `sqrt(d_model)`.
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// The first, when the config lists several.
    #[serde(default, deserialize_with = "first_id")]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// Marian: the target vocabulary's size when it differs from the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_vocab_size: Option<usize>,
    /// Marian: `false` gives the encoder and decoder their own embedding tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_encoder_decoder_embeddings: Option<bool>,
    /// Keys of older BART-family configs (mBART-style variants) that change the blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize_before: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_final_layer_norm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize_embedding: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_position_embeddings: Option<bool>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl BartConfig {
    /// BART or Marian, from the first `architectures` entry or else `model_type`.
    pub fn flavor(&self) -> std::result::Result<BartFlavor, String> {
        let name = self
            .architectures
            .first()
            .map(String::as_str)
            .or(self.model_type.as_deref());
        match name {
            Some("BartForConditionalGeneration" | "bart") => Ok(BartFlavor::Bart),
            Some("MarianMTModel" | "marian") => Ok(BartFlavor::Marian),
            Some(other) => Err(format!(
                "`{other}` is not BartForConditionalGeneration or MarianMTModel"
            )),
            None => Err("no `architectures` or `model_type`: BART or Marian?".into()),
        }
    }

    /// Checks the shape constraints a forward pass relies on, and refuses the variants of the
    /// family this implementation does not compute (naming the field).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let flavor = self.flavor()?;
        let positive = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("encoder_ffn_dim", self.encoder_ffn_dim),
            ("decoder_ffn_dim", self.decoder_ffn_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        for (name, heads) in [
            ("encoder_attention_heads", self.encoder_attention_heads),
            ("decoder_attention_heads", self.decoder_attention_heads),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return Err(format!(
                    "d_model ({}) must be a multiple of `{name}` ({heads})",
                    self.d_model
                ));
            }
        }
        if tasklm_nn::Activation::from_name(&self.activation_function).is_none() {
            return Err(format!(
                "`activation_function` {:?}: expected one of {}",
                self.activation_function,
                tasklm_nn::Activation::NAMES
            ));
        }
        let unsupported = |field: &str, what: &str| {
            Err(format!(
                "`{field}` asks for {what}, which this BART/Marian implementation does not \
                 compute (it has post-norm blocks with no final layer norm)"
            ))
        };
        if self.normalize_before == Some(true) {
            return unsupported("normalize_before: true", "pre-norm blocks (mBART-style)");
        }
        if self.add_final_layer_norm == Some(true) {
            return unsupported("add_final_layer_norm: true", "a final layer norm per stack");
        }
        if flavor == BartFlavor::Marian {
            if self.share_encoder_decoder_embeddings == Some(false) {
                return Err(
                    "`share_encoder_decoder_embeddings: false` (separate source and \
                            target embeddings) is not supported: only Marian models with one \
                            shared vocabulary are"
                        .into(),
                );
            }
            if let Some(d) = self.decoder_vocab_size.filter(|&d| d != self.vocab_size) {
                return Err(format!(
                    "`decoder_vocab_size` {d} differs from `vocab_size` {}: separate target \
                     vocabularies are not supported",
                    self.vocab_size
                ));
            }
            if self.normalize_embedding == Some(true) {
                return unsupported("normalize_embedding: true", "an embedding layer norm");
            }
            if self.static_position_embeddings == Some(false) {
                return unsupported(
                    "static_position_embeddings: false",
                    "learned positions in a Marian model",
                );
            }
        }
        Ok(())
    }

    pub fn pad(&self) -> u32 {
        self.pad_token_id.unwrap_or(1)
    }

    /// The token the decoder starts from: `decoder_start_token_id` (BART: 2, `</s>`), else
    /// the pad token (Marian's start).
    pub fn decoder_start(&self) -> u32 {
        self.decoder_start_token_id.unwrap_or(self.pad())
    }

    /// `sqrt(d_model)` when `scale_embedding`, else 1.
    pub fn embed_scale(&self) -> f64 {
        if self.scale_embedding {
            (self.d_model as f64).sqrt()
        } else {
            1.0
        }
    }
}
