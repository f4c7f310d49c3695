//! T5 encoder-decoder (Raffel et al. 2020; T5 v1.1 and Flan-T5 are the same code with a gated
//! GELU feed-forward and an untied head).
//!
//! Reference: transformers v5.24.0, `models/t5/modeling_t5.py`. Pre-norm blocks with an
//! RMS-style layer norm (no mean, no bias); attention with no biases, inner width
//! `num_heads * d_kv`, and no `1/sqrt(d)` scaling; relative position buckets held by the first
//! layer of each stack and shared by the rest (bidirectional in the encoder, causal in the
//! decoder, none in cross-attention); no embedding scaling; T5 scales the decoder output by
//! `d_model^-0.5` before its tied head (v1.1 does not: `scale_decoder_outputs`, or an untied
//! `tie_word_embeddings: false` in older configs); the decoder starts from
//! `decoder_start_token_id` (0).

use super::cache::Seq2SeqCache;
use super::t5_config::{relative_position_bucket, T5Config};
use super::EncoderDecoder;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use tasklm_nn::{
    attention_mask, dropout, Embedding, HeadLayout, Linear, MultiHeadAttention, RmsNorm,
};

/// T5's attention: the shared multi-head block with no biases, no `1/sqrt(d)` scaling and an
/// inner width of `num_heads * d_kv`, plus the relative position table of a stack's first
/// self-attention layer.
struct T5Attention {
    mha: MultiHeadAttention,
    /// (num_buckets, heads): only the first self-attention layer of each stack has it.
    relative_bias: Option<Embedding>,
}

impl T5Attention {
    fn load(cfg: &T5Config, has_bias: bool, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        let lin = |n: &str, i, o| Linear::new(i, o, false, vb.pp(n));
        let layout = HeadLayout {
            heads: cfg.num_heads,
            head_dim: cfg.d_kv,
            scale: 1.0,
            dropout: cfg.dropout_rate,
        };
        Ok(Self {
            mha: MultiHeadAttention::new(
                lin("q", cfg.d_model, inner)?,
                lin("k", cfg.d_model, inner)?,
                lin("v", cfg.d_model, inner)?,
                lin("o", inner, cfg.d_model)?,
                layout,
            ),
            relative_bias: has_bias
                .then(|| {
                    Embedding::new(
                        cfg.relative_attention_num_buckets,
                        cfg.num_heads,
                        vb.pp("relative_attention_bias"),
                    )
                })
                .transpose()?,
        })
    }

    /// (1, heads, q_len, k_len) bias for queries at positions `past..past + q_len`.
    fn position_bias(
        &self,
        cfg: &T5Config,
        q_len: usize,
        k_len: usize,
        past: usize,
        bidirectional: bool,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        let Some(table) = &self.relative_bias else {
            return Ok(None);
        };
        let mut buckets = Vec::with_capacity(q_len * k_len);
        for i in 0..q_len {
            for j in 0..k_len {
                buckets.push(relative_position_bucket(
                    j as i64 - (past + i) as i64,
                    bidirectional,
                    cfg.relative_attention_num_buckets,
                    cfg.relative_attention_max_distance,
                ) as u32);
            }
        }
        let ids = Tensor::from_vec(buckets, (q_len, k_len), device)?;
        let bias = table.forward(&ids)?; // (q, k, heads)
        Ok(Some(bias.permute((2, 0, 1))?.unsqueeze(0)?))
    }
}

struct FeedForward {
    /// `gelu_new` (gated-gelu) rather than relu.
    gelu: bool,
    wi: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
    dropout: f32,
}

impl FeedForward {
    fn load(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let (wi, wi_1) = if cfg.gated() {
            (
                Linear::new(cfg.d_model, cfg.d_ff, false, vb.pp("wi_0"))?,
                Some(Linear::new(cfg.d_model, cfg.d_ff, false, vb.pp("wi_1"))?),
            )
        } else {
            (
                Linear::new(cfg.d_model, cfg.d_ff, false, vb.pp("wi"))?,
                None,
            )
        };
        Ok(Self {
            gelu: cfg.feed_forward_proj.ends_with("gelu"),
            wi,
            wi_1,
            wo: Linear::new(cfg.d_ff, cfg.d_model, false, vb.pp("wo"))?,
            dropout: cfg.dropout_rate,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.wi.forward(x)?;
        // gated-gelu: transformers' `gelu_new`, the tanh approximation.
        let h = if self.gelu { h.gelu()? } else { h.relu()? };
        let h = match &self.wi_1 {
            Some(wi_1) => (h * wi_1.forward(x)?)?,
            None => h,
        };
        self.wo.forward(&dropout(&h, self.dropout, train)?)
    }
}

struct Block {
    self_attn: T5Attention,
    self_norm: RmsNorm,
    cross: Option<(T5Attention, RmsNorm)>,
    ff: FeedForward,
    ff_norm: RmsNorm,
}

/// One stack (encoder or decoder): blocks and a final norm.
struct Stack {
    blocks: Vec<Block>,
    final_norm: RmsNorm,
    dropout: f32,
}

impl Stack {
    fn load(cfg: &T5Config, decoder: bool, vb: VarBuilder) -> Result<Self> {
        let n = if decoder {
            cfg.decoder_layers()
        } else {
            cfg.num_layers
        };
        let eps = cfg.layer_norm_epsilon;
        let mut blocks = Vec::with_capacity(n);
        for i in 0..n {
            let l = vb.pp(format!("block.{i}.layer"));
            let cross = if decoder {
                Some((
                    T5Attention::load(cfg, false, l.pp("1.EncDecAttention"))?,
                    RmsNorm::new(cfg.d_model, eps, l.pp("1.layer_norm"))?,
                ))
            } else {
                None
            };
            let ff = if decoder { "2" } else { "1" };
            blocks.push(Block {
                self_attn: T5Attention::load(cfg, i == 0, l.pp("0.SelfAttention"))?,
                self_norm: RmsNorm::new(cfg.d_model, eps, l.pp("0.layer_norm"))?,
                cross,
                ff: FeedForward::load(cfg, l.pp(format!("{ff}.DenseReluDense")))?,
                ff_norm: RmsNorm::new(cfg.d_model, eps, l.pp(format!("{ff}.layer_norm")))?,
            });
        }
        Ok(Self {
            blocks,
            final_norm: RmsNorm::new(cfg.d_model, eps, vb.pp("final_layer_norm"))?,
            dropout: cfg.dropout_rate,
        })
    }
}

pub struct T5 {
    cfg: T5Config,
    shared: Embedding,
    encoder: Stack,
    decoder: Stack,
    lm_head: Linear,
}

impl T5 {
    /// Loads `T5ForConditionalGeneration` weights (`shared`, `encoder.block.*`,
    /// `decoder.block.*`, `lm_head` unless tied).
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let shared = Embedding::new(cfg.vocab_size, cfg.d_model, vb.pp("shared"))?;
        // T5 v1.1 / Flan-T5 checkpoints have their own head; T5's (and every checkpoint
        // transformers 5 writes) is the shared embedding table.
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            Linear::new(cfg.d_model, cfg.vocab_size, false, vb.pp("lm_head"))?
        } else {
            Linear::from_weights(shared.weight().clone(), None)
        };
        Ok(Self {
            cfg: cfg.clone(),
            encoder: Stack::load(cfg, false, vb.pp("encoder"))?,
            decoder: Stack::load(cfg, true, vb.pp("decoder"))?,
            shared,
            lm_head,
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.cfg
    }
}

impl EncoderDecoder for T5 {
    /// The encoder's output (B, S, d_model) for source ids (B, S) with their key mask
    /// (`key_mask[b][j]`: 0 for padding).
    fn encode(&self, ids: &Tensor, key_mask: &[Vec<u8>], train: bool) -> Result<Tensor> {
        let (_, s) = ids.dims2()?;
        let stack = &self.encoder;
        let mask = attention_mask(key_mask, s, false, ids.device())?;
        let bias =
            stack.blocks[0]
                .self_attn
                .position_bias(&self.cfg, s, s, 0, true, ids.device())?;
        let mut h = dropout(&self.shared.forward(ids)?, stack.dropout, train)?;
        for b in &stack.blocks {
            let x = b.self_norm.forward(&h)?;
            let attn = &b.self_attn.mha;
            let q = attn.queries(&x, train)?;
            let (k, v) = attn.keys_values(&x, train)?;
            let a = attn.attend(&q, &k, &v, bias.as_ref(), &mask, train)?;
            h = (h + dropout(&a, stack.dropout, train)?)?;
            let f = b.ff.forward(&b.ff_norm.forward(&h)?, train)?;
            h = (h + dropout(&f, stack.dropout, train)?)?;
        }
        dropout(&stack.final_norm.forward(&h)?, stack.dropout, train)
    }

    /// A decoder cache for the encoder output `source` (B, S, d_model) and its key mask.
    fn start_cache(&self, source: &Tensor, key_mask: &[Vec<u8>]) -> Result<Seq2SeqCache> {
        let cross_kv = self
            .decoder
            .blocks
            .iter()
            .map(|b| match &b.cross {
                Some((attn, _)) => attn.mha.keys_values(source, false),
                None => candle_core::bail!("a T5 decoder block without cross-attention"),
            })
            .collect::<Result<_>>()?;
        Ok(Seq2SeqCache::new(
            self.decoder.blocks.len(),
            cross_kv,
            attention_mask(key_mask, 1, false, source.device())?,
        ))
    }

    /// Decoder hidden states (B, T, d_model) for decoder ids (B, T) that follow the cache's
    /// positions (all of them, with an empty cache: teacher forcing).
    fn decode(&self, ids: &Tensor, cache: &mut Seq2SeqCache, train: bool) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let past = cache.len();
        let stack = &self.decoder;
        let causal = attention_mask(&vec![vec![1u8; past + t]; b], t, true, ids.device())?;
        let bias = stack.blocks[0].self_attn.position_bias(
            &self.cfg,
            t,
            past + t,
            past,
            false,
            ids.device(),
        )?;
        let mut h = dropout(&self.shared.forward(ids)?, stack.dropout, train)?;
        for (i, blk) in stack.blocks.iter().enumerate() {
            let x = blk.self_norm.forward(&h)?;
            let attn = &blk.self_attn.mha;
            let q = attn.queries(&x, train)?;
            let (k, v) = attn.keys_values(&x, train)?;
            let (k, v) = cache.self_keys_values(i, k, v)?;
            let a = attn.attend(&q, &k, &v, bias.as_ref(), &causal, train)?;
            h = (h + dropout(&a, stack.dropout, train)?)?;
            if let Some((cross, norm)) = &blk.cross {
                let x = norm.forward(&h)?;
                let q = cross.mha.queries(&x, train)?;
                let (k, v, mask) = cache.cross(i, t)?;
                let a = cross.mha.attend(&q, k, v, None, &mask, train)?;
                h = (h + dropout(&a, stack.dropout, train)?)?;
            }
            let f = blk.ff.forward(&blk.ff_norm.forward(&h)?, train)?;
            h = (h + dropout(&f, stack.dropout, train)?)?;
        }
        dropout(&stack.final_norm.forward(&h)?, stack.dropout, train)
    }

    /// Next-token logits (.., vocab) of decoder hidden states.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = if self.cfg.scales_decoder_output() {
            (hidden * (self.cfg.d_model as f64).powf(-0.5))?
        } else {
            hidden.clone()
        };
        self.lm_head.forward(&h)
    }

    fn decoder_start(&self) -> u32 {
        self.cfg.decoder_start()
    }

    fn pad_id(&self) -> u32 {
        self.cfg.pad_token_id.unwrap_or(0)
    }
}
