//! BERT-family encoder (Devlin et al. 2019, "BERT"; MiniLM and other BERT-shaped checkpoints).
//!
//! Reference: transformers v5.24.0, `models/bert/modeling_bert.py`. Embeddings are word +
//! learned absolute position + token type, then LayerNorm and dropout; each block is post-norm:
//! `h = LN(x + drop(attn(x)))`, `y = LN(h + drop(W2 gelu(W1 h)))`; bidirectional attention
//! with a padding mask; an optional pooler `tanh(W h[CLS])`.
//!
//! Quirks kept: GELU is the exact erf form (`hidden_act: "gelu"`); positions count from 0 for
//! every row (right padding), unlike RoBERTa's `padding_idx + 1` offsets, which a RoBERTa
//! variant would add here.

use super::EncoderInput;
use crate::heads::Pool;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tasklm_nn::{
    attention_mask, dropout, ops, side_by_side_attention, AttentionParams, Embedding, LayerNorm,
    Linear,
};

/// Prefix of the backbone's weights in a `BertFor...` checkpoint (`bert.embeddings...`); a
/// bare `BertModel` has none and is renamed to it on load, so every model tasklm trains is
/// saved under transformers' task-model names.
pub const BERT_PREFIX: &str = "bert";

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_init_range() -> f64 {
    0.02
}

/// `config.json` of a BERT-family checkpoint, with transformers' key names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    /// Dropout before a classification head; `hidden_dropout_prob` when absent.
    #[serde(default)]
    pub classifier_dropout: Option<f32>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl BertConfig {
    /// Checks what the forward pass relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size ({}) must be a multiple of num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            return Err(format!(
                "hidden_act `{}` is not supported (gelu, gelu_new, relu)",
                self.hidden_act
            ));
        }
        if let Some(kind) = &self.position_embedding_type {
            if kind != "absolute" {
                return Err(format!(
                    "position_embedding_type `{kind}` is not supported (absolute)"
                ));
            }
        }
        Ok(())
    }

    pub fn head_dropout(&self) -> f32 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }
}

#[derive(Clone, Debug)]
struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    dropout: f32,
}

impl Embeddings {
    fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            word_embeddings: Embedding::new(cfg.vocab_size, h, vb.pp("word_embeddings"))?,
            position_embeddings: Embedding::new(
                cfg.max_position_embeddings,
                h,
                vb.pp("position_embeddings"),
            )?,
            token_type_embeddings: Embedding::new(
                cfg.type_vocab_size,
                h,
                vb.pp("token_type_embeddings"),
            )?,
            layer_norm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let (_b, t) = input.input_ids.dims2()?;
        let max = self.position_embeddings.weight().dim(0)?;
        if t > max {
            candle_core::bail!("{t} tokens are more than the {max} positions this encoder has");
        }
        let positions = Tensor::arange(0u32, t as u32, input.input_ids.device())?;
        let words = self.word_embeddings.forward(&input.input_ids)?; // (B, T, H)
        let types = self.token_type_embeddings.forward(&input.token_type_ids)?; // (B, T, H)
        let pos = self.position_embeddings.forward(&positions)?; // (T, H)
        let x = (words + types)?.broadcast_add(&pos)?;
        dropout(&self.layer_norm.forward(&x)?, self.dropout, train)
    }
}

#[derive(Clone, Debug)]
struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    output_norm: LayerNorm,
    n_heads: usize,
    head_dim: usize,
    attn_dropout: f32,
    hidden_dropout: f32,
}

impl SelfAttention {
    /// `vb` is `encoder.layer.N.attention`: `self.{query,key,value}`, `output.{dense,LayerNorm}`.
    fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let s = vb.pp("self");
        let o = vb.pp("output");
        Ok(Self {
            query: Linear::new(h, h, true, s.pp("query"))?,
            key: Linear::new(h, h, true, s.pp("key"))?,
            value: Linear::new(h, h, true, s.pp("value"))?,
            output: Linear::new(h, h, true, o.pp("dense"))?,
            output_norm: LayerNorm::new(h, cfg.layer_norm_eps, o.pp("LayerNorm"))?,
            n_heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            attn_dropout: cfg.attention_probs_dropout_prob,
            hidden_dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> Result<Tensor> {
        let (q, k, v) = (
            self.query.forward_t(x, train)?, // (B, T, H), heads side by side
            self.key.forward_t(x, train)?,
            self.value.forward_t(x, train)?,
        );
        let params = AttentionParams {
            scale: 1.0 / (self.head_dim as f64).sqrt(),
            dropout: self.attn_dropout,
            train,
        };
        let y =
            side_by_side_attention(&q, &k, &v, (self.n_heads, self.n_heads), Some(mask), params)?; // (B, T, H)
        let y = dropout(
            &self.output.forward_t(&y, train)?,
            self.hidden_dropout,
            train,
        )?;
        self.output_norm.forward(&(x + y)?)
    }
}

#[derive(Clone, Debug)]
struct Layer {
    attention: SelfAttention,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    act: String,
    dropout: f32,
}

impl Layer {
    fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: SelfAttention::new(cfg, vb.pp("attention"))?,
            intermediate: Linear::new(h, i, true, vb.pp("intermediate").pp("dense"))?,
            output: Linear::new(i, h, true, vb.pp("output").pp("dense"))?,
            output_norm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            act: cfg.hidden_act.clone(),
            dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.attention.forward(x, mask, train)?;
        let up = self.intermediate.forward_t(&h, train)?; // (B, T, I)
        let act = match self.act.as_str() {
            "gelu_new" => up.gelu()?,
            "relu" => up.relu()?,
            _ => ops::gelu_erf(&up)?,
        };
        let y = dropout(&self.output.forward_t(&act, train)?, self.dropout, train)?;
        self.output_norm.forward(&(h + y)?)
    }
}

/// The BERT backbone: hidden states for every token, and the pooled `[CLS]` vector when the
/// checkpoint has a pooler.
#[derive(Clone, Debug)]
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    cfg: BertConfig,
}

impl Bert {
    /// Builds the backbone from weights named as in a `BertModel` checkpoint
    /// (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`,
    /// `pooler.dense.weight`); pass `vb.pp("bert")` for a `BertFor...` checkpoint.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, vb.pp("encoder").pp("layer").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if vb.contains_tensor("pooler.dense.weight") {
            let h = cfg.hidden_size;
            Some(Linear::new(h, h, true, vb.pp("pooler").pp("dense"))?)
        } else {
            None
        };
        Ok(Self {
            embeddings: Embeddings::new(cfg, vb.pp("embeddings"))?,
            layers,
            pooler,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Hidden states (B, T, H); `train` turns dropout on.
    pub fn forward_t(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let (_b, t) = input.input_ids.dims2()?;
        let device = input.input_ids.device();
        let mask = attention_mask(&input.key_mask, t, false, device)?; // (B, 1, T, T)
        let mut x = self.embeddings.forward(input, train)?; // (B, T, H)
        for layer in &self.layers {
            x = layer.forward(&x, &mask, train)?;
        }
        Ok(x)
    }

    /// The sequence vector a classification head reads: `tanh(pooler(h[CLS]))` when the
    /// checkpoint has a pooler, else `h[CLS]` ([`Pool::Cls`]). `hidden`: (B, T, H) -> (B, H).
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = Pool::Cls.forward(hidden, None)?; // (B, H)
        match &self.pooler {
            Some(p) => p.forward(&cls)?.tanh(),
            None => Ok(cls),
        }
    }
}
