//! BART (Lewis et al. 2020) and Marian (opus-mt, Junczys-Dowmunt et al. 2018): one post-norm
//! encoder-decoder with two ways of adding positions.
//!
//! Reference: transformers v5.24.0, `models/bart/modeling_bart.py` and
//! `models/marian/modeling_marian.py`. Each block is post-norm:
//! `h = LN(x + drop(attn(x)))`, (decoder: `h = LN(h + drop(cross(h, source)))`),
//! `y = LN(h + drop(fc2(drop(act(fc1 h)))))`; attention has biases and `1/sqrt(head_dim)`
//! scaling; cross-attention is the same block over the encoder output with the source's mask.
//! Token embeddings (one table shared by encoder, decoder and the tied head) are scaled by
//! `sqrt(d_model)` when `scale_embedding`; then
//! - BART adds learned positions looked up at `position + 2` (the table has
//!   `max_position_embeddings + 2` rows) and applies `layernorm_embedding`;
//! - Marian adds fixed sinusoidal positions (`MarianSinusoidalPositionalEmbedding`: the sines
//!   of all frequencies in the first half of the features, the cosines in the second) and has
//!   no embedding norm.
//!
//! Logits are the tied head plus `final_logits_bias` (a buffer: never trained). The decoder
//! starts from `decoder_start_token_id` (BART: 2) or the pad token (Marian).

use super::bart_config::{BartConfig, BartFlavor};
use super::cache::Seq2SeqCache;
use super::EncoderDecoder;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use tasklm_nn::{
    attention_mask, dropout, Activation, Embedding, HeadLayout, LayerNorm, Linear,
    MultiHeadAttention,
};

/// BART's learned positions start at row 2 of their table.
const BART_POSITION_OFFSET: usize = 2;
/// `nn.LayerNorm`'s default, which BART and Marian use.
const LN_EPS: f64 = 1e-5;

enum Positions {
    /// (max_position_embeddings + 2, d_model), looked up at `position + 2`.
    Learned(Embedding),
    /// (max_position_embeddings, d_model), fixed.
    Sinusoidal(Tensor),
}

/// transformers' `MarianSinusoidalPositionalEmbedding` table, computed in f64 as numpy does
/// and rounded to f32: row `p`, column `i < ceil(dim/2)` is `sin(p / 10000^(2i/dim))`,
/// column `ceil(dim/2) + i` is `cos(p / 10000^(2i/dim))`.
pub fn sinusoidal_table(n_pos: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let sentinel = dim.div_ceil(2);
    let mut data = vec![0f32; n_pos * dim];
    for p in 0..n_pos {
        let row = &mut data[p * dim..(p + 1) * dim];
        for j in 0..dim {
            let angle = p as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
            if j % 2 == 0 {
                row[j / 2] = angle.sin() as f32;
            } else {
                row[sentinel + j / 2] = angle.cos() as f32;
            }
        }
    }
    Tensor::from_vec(data, (n_pos, dim), device)
}

impl Positions {
    fn load(cfg: &BartConfig, flavor: BartFlavor, vb: VarBuilder) -> Result<Self> {
        Ok(match flavor {
            BartFlavor::Bart => Self::Learned(Embedding::new(
                cfg.max_position_embeddings + BART_POSITION_OFFSET,
                cfg.d_model,
                vb.pp("embed_positions"),
            )?),
            BartFlavor::Marian => Self::Sinusoidal(sinusoidal_table(
                cfg.max_position_embeddings,
                cfg.d_model,
                vb.device(),
            )?),
        })
    }

    fn max(&self) -> Result<usize> {
        Ok(match self {
            Self::Learned(e) => e.weight().dim(0)? - BART_POSITION_OFFSET,
            Self::Sinusoidal(t) => t.dim(0)?,
        })
    }

    /// (t, d_model) embeddings of positions `past..past + t`.
    fn forward(&self, past: usize, t: usize, device: &Device) -> Result<Tensor> {
        let max = self.max()?;
        if past + t > max {
            candle_core::bail!(
                "{} tokens are more than the {max} positions this model has \
                 (`max_position_embeddings`)",
                past + t
            );
        }
        match self {
            Self::Learned(e) => {
                let start = (past + BART_POSITION_OFFSET) as u32;
                e.forward(&Tensor::arange(start, start + t as u32, device)?)
            }
            Self::Sinusoidal(table) => table.narrow(0, past, t),
        }
    }
}

struct Layer {
    self_attn: MultiHeadAttention,
    self_norm: LayerNorm,
    /// Decoder layers: cross-attention over the encoder output and its norm.
    cross: Option<(MultiHeadAttention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    final_norm: LayerNorm,
}

/// One stack (encoder or decoder) and what it adds to the token embeddings.
struct Stack {
    layers: Vec<Layer>,
    positions: Positions,
    layernorm_embedding: Option<LayerNorm>,
}

fn attention(cfg: &BartConfig, heads: usize, vb: VarBuilder) -> Result<MultiHeadAttention> {
    let d = cfg.d_model;
    let lin = |n: &str| Linear::new(d, d, true, vb.pp(n));
    let head_dim = d / heads;
    let layout = HeadLayout {
        heads,
        head_dim,
        scale: 1.0 / (head_dim as f64).sqrt(),
        dropout: cfg.attention_dropout,
    };
    Ok(MultiHeadAttention::new(
        lin("q_proj")?,
        lin("k_proj")?,
        lin("v_proj")?,
        lin("out_proj")?,
        layout,
    ))
}

impl Stack {
    fn load(cfg: &BartConfig, flavor: BartFlavor, decoder: bool, vb: VarBuilder) -> Result<Self> {
        let (n, heads, ffn) = if decoder {
            (
                cfg.decoder_layers,
                cfg.decoder_attention_heads,
                cfg.decoder_ffn_dim,
            )
        } else {
            (
                cfg.encoder_layers,
                cfg.encoder_attention_heads,
                cfg.encoder_ffn_dim,
            )
        };
        let d = cfg.d_model;
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            let l = vb.pp(format!("layers.{i}"));
            let cross = if decoder {
                Some((
                    attention(cfg, heads, l.pp("encoder_attn"))?,
                    LayerNorm::new(d, LN_EPS, l.pp("encoder_attn_layer_norm"))?,
                ))
            } else {
                None
            };
            layers.push(Layer {
                self_attn: attention(cfg, heads, l.pp("self_attn"))?,
                self_norm: LayerNorm::new(d, LN_EPS, l.pp("self_attn_layer_norm"))?,
                cross,
                fc1: Linear::new(d, ffn, true, l.pp("fc1"))?,
                fc2: Linear::new(ffn, d, true, l.pp("fc2"))?,
                final_norm: LayerNorm::new(d, LN_EPS, l.pp("final_layer_norm"))?,
            });
        }
        let layernorm_embedding = match flavor {
            BartFlavor::Bart => Some(LayerNorm::new(d, LN_EPS, vb.pp("layernorm_embedding"))?),
            BartFlavor::Marian => None,
        };
        Ok(Self {
            layers,
            positions: Positions::load(cfg, flavor, vb)?,
            layernorm_embedding,
        })
    }
}

pub struct Bart {
    cfg: BartConfig,
    flavor: BartFlavor,
    shared: Embedding,
    encoder: Stack,
    decoder: Stack,
    lm_head: Linear,
    /// (1, vocab), added to the logits.
    final_logits_bias: Tensor,
}

impl Bart {
    /// Loads `BartForConditionalGeneration` / `MarianMTModel` weights (`model.shared`,
    /// `model.{encoder,decoder}.layers.*`, BART's `embed_positions` and `layernorm_embedding`,
    /// `final_logits_bias` (zeros when absent), `lm_head` unless tied).
    pub fn new(cfg: &BartConfig, vb: VarBuilder) -> Result<Self> {
        let flavor = cfg.flavor().map_err(candle_core::Error::msg)?;
        let m = vb.pp("model");
        let table = if m.contains_tensor("shared.weight") {
            "shared"
        } else {
            "encoder.embed_tokens"
        };
        let shared = Embedding::new(cfg.vocab_size, cfg.d_model, m.pp(table))?;
        let lm_head = if !cfg.tie_word_embeddings && vb.contains_tensor("lm_head.weight") {
            Linear::new(cfg.d_model, cfg.vocab_size, false, vb.pp("lm_head"))?
        } else {
            Linear::from_weights(shared.weight().clone(), None)
        };
        let final_logits_bias = if vb.contains_tensor("final_logits_bias") {
            vb.get((1, cfg.vocab_size), "final_logits_bias")?.detach()
        } else {
            Tensor::zeros((1, cfg.vocab_size), DType::F32, vb.device())?
        };
        Ok(Self {
            cfg: cfg.clone(),
            flavor,
            encoder: Stack::load(cfg, flavor, false, m.pp("encoder"))?,
            decoder: Stack::load(cfg, flavor, true, m.pp("decoder"))?,
            shared,
            lm_head,
            final_logits_bias,
        })
    }

    pub fn config(&self) -> &BartConfig {
        &self.cfg
    }

    pub fn flavor(&self) -> BartFlavor {
        self.flavor
    }

    /// Scaled token embeddings. The table is transformers' `nn.Embedding(padding_idx=pad)`:
    /// pad positions pass no gradient to it (the tied head still trains the pad row).
    fn token_embeddings(&self, ids: &Tensor) -> Result<Tensor> {
        let e = (self.shared.forward(ids)? * self.cfg.embed_scale())?;
        if !e.track_op() {
            return Ok(e);
        }
        let pad = self.cfg.pad();
        let (b, t) = ids.dims2()?;
        let keep: Vec<f32> = ids
            .flatten_all()?
            .to_vec1::<u32>()?
            .iter()
            .map(|&id| if id == pad { 0.0 } else { 1.0 })
            .collect();
        if keep.iter().all(|&k| k == 1.0) {
            return Ok(e);
        }
        let keep = Tensor::from_vec(keep, (b, t, 1), ids.device())?;
        let frozen = e.detach().broadcast_mul(&keep.affine(-1.0, 1.0)?)?;
        e.broadcast_mul(&keep)? + frozen
    }

    /// Scaled token embeddings plus positions `past..`, the embedding norm, dropout.
    fn embed(&self, stack: &Stack, ids: &Tensor, past: usize, train: bool) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let pos = stack.positions.forward(past, t, ids.device())?;
        let tokens = self.token_embeddings(ids)?;
        let h = tokens.broadcast_add(&pos)?;
        let h = match &stack.layernorm_embedding {
            Some(norm) => norm.forward(&h)?,
            None => h,
        };
        dropout(&h, self.cfg.dropout, train)
    }

    /// `h + drop(sublayer)`, then the norm: the post-norm residual.
    fn residual(&self, h: &Tensor, out: &Tensor, norm: &LayerNorm, train: bool) -> Result<Tensor> {
        norm.forward(&(h + dropout(out, self.cfg.dropout, train)?)?)
    }

    fn feed_forward(&self, layer: &Layer, h: &Tensor, train: bool) -> Result<Tensor> {
        let up = layer.fc1.forward_t(h, train)?;
        // `validate` accepted the name; gelu (BART's default) otherwise.
        let act = Activation::from_name(&self.cfg.activation_function)
            .unwrap_or(Activation::Gelu)
            .forward(&up)?;
        let act = dropout(&act, self.cfg.activation_dropout, train)?;
        let out = layer.fc2.forward_t(&act, train)?;
        self.residual(h, &out, &layer.final_norm, train)
    }
}

impl EncoderDecoder for Bart {
    fn encode(&self, ids: &Tensor, key_mask: &[Vec<u8>], train: bool) -> Result<Tensor> {
        let (_, s) = ids.dims2()?;
        let mask = attention_mask(key_mask, s, false, ids.device())?;
        let mut h = self.embed(&self.encoder, ids, 0, train)?;
        for layer in &self.encoder.layers {
            let attn = &layer.self_attn;
            let (k, v) = attn.keys_values(&h, train)?;
            let a = attn.attend(&attn.queries(&h, train)?, &k, &v, None, &mask, train)?;
            h = self.residual(&h, &a, &layer.self_norm, train)?;
            h = self.feed_forward(layer, &h, train)?;
        }
        Ok(h)
    }

    fn start_cache(&self, source: &Tensor, key_mask: &[Vec<u8>]) -> Result<Seq2SeqCache> {
        let cross_kv = self
            .decoder
            .layers
            .iter()
            .map(|l| match &l.cross {
                Some((attn, _)) => attn.keys_values(source, false),
                None => candle_core::bail!("a decoder layer without cross-attention"),
            })
            .collect::<Result<_>>()?;
        Ok(Seq2SeqCache::new(
            self.decoder.layers.len(),
            cross_kv,
            attention_mask(key_mask, 1, false, source.device())?,
        ))
    }

    fn decode(&self, ids: &Tensor, cache: &mut Seq2SeqCache, train: bool) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let past = cache.len();
        let causal = attention_mask(&vec![vec![1u8; past + t]; b], t, true, ids.device())?;
        let mut h = self.embed(&self.decoder, ids, past, train)?;
        for (i, layer) in self.decoder.layers.iter().enumerate() {
            let attn = &layer.self_attn;
            let q = attn.queries(&h, train)?;
            let (k, v) = attn.keys_values(&h, train)?;
            let (k, v) = cache.self_keys_values(i, k, v)?;
            let a = attn.attend(&q, &k, &v, None, &causal, train)?;
            h = self.residual(&h, &a, &layer.self_norm, train)?;
            if let Some((cross, norm)) = &layer.cross {
                let q = cross.queries(&h, train)?;
                let (k, v, mask) = cache.cross(i, t)?;
                let a = cross.attend(&q, k, v, None, &mask, train)?;
                h = self.residual(&h, &a, norm, train)?;
            }
            h = self.feed_forward(layer, &h, train)?;
        }
        Ok(h)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head
            .forward(hidden)?
            .broadcast_add(&self.final_logits_bias)
    }

    fn decoder_start(&self) -> u32 {
        self.cfg.decoder_start()
    }

    fn pad_id(&self) -> u32 {
        self.cfg.pad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoidal_table_puts_sines_first_and_cosines_second() -> Result<()> {
        // dim 4: frequencies 1 and 1/100; row p = [sin p, sin p/100, cos p, cos p/100].
        let t = sinusoidal_table(3, 4, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(t[0], vec![0.0, 0.0, 1.0, 1.0]);
        let p = 2f64;
        let want = [p.sin(), (p / 100.0).sin(), p.cos(), (p / 100.0).cos()];
        for (g, w) in t[2].iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-7, "{:?} vs {want:?}", t[2]);
        }
        // Odd width: ceil(5/2) = 3 sines, 2 cosines.
        let t = sinusoidal_table(2, 5, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(t[0], vec![0.0, 0.0, 0.0, 1.0, 1.0]);
        Ok(())
    }
}
