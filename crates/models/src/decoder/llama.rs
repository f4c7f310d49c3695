//! Llama-family decoder (Touvron et al. 2023, "LLaMA"; SmolLM2 and Mistral-style configs), with
//! Qwen2's q/k/v biases as a flag.
//!
//! Reference: transformers v5.24.0, `models/llama/modeling_llama.py` and
//! `models/qwen2/modeling_qwen2.py`. Pre-norm blocks: `h = x + attn(rms(x))`,
//! `y = h + mlp(rms(h))`; rotary embeddings in the "rotate half" layout; grouped-query attention;
//! SwiGLU MLP; final RMS norm; LM head tied to the embeddings or not.

use super::{splice_embeds, CausalLm, DecoderInput};
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tasklm_nn::{
    attention_mask, ops, positions_from_mask, scaled_dot_product_attention, side_by_side_attention,
    AttentionParams, Embedding, KvCache, Linear, QuantizedWeights, RmsNorm, Rotary, RotaryConfig,
};

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}

/// `config.json` of a Llama-family checkpoint, with transformers' key names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v/o (Llama's `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on q/k/v only (Qwen2). Not a config.json key: set by the registry.
    #[serde(default, skip_serializing)]
    pub qkv_bias: bool,
    #[serde(default)]
    pub attention_dropout: f32,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl LlamaConfig {
    pub fn n_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary table this config asks for.
    pub fn rotary(&self) -> RotaryConfig {
        RotaryConfig {
            head_dim: self.head_dim(),
            theta: self.rope_theta,
            max_positions: self.max_position_embeddings,
        }
    }

    /// Checks the shape constraints a forward pass relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0 || self.n_kv_heads() == 0 {
            return Err("num_attention_heads and num_key_value_heads must be positive".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.n_kv_heads()) {
            return Err(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.n_kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if let Some(scaling) = &self.rope_scaling {
            let kind = scaling
                .get("rope_type")
                .or_else(|| scaling.get("type"))
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            if kind != "default" {
                return Err(format!("rope_scaling type `{kind}` is not supported yet"));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
    dropout: f32,
}

impl Attention {
    fn new(cfg: &LlamaConfig, vb: VarBuilder, q: Option<&QuantizedWeights>) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (nh, nkv) = (cfg.num_attention_heads, cfg.n_kv_heads());
        let qkv_bias = cfg.attention_bias || cfg.qkv_bias;
        Ok(Self {
            q_proj: Linear::load(h, nh * hd, qkv_bias, vb.pp("q_proj"), q)?,
            k_proj: Linear::load(h, nkv * hd, qkv_bias, vb.pp("k_proj"), q)?,
            v_proj: Linear::load(h, nkv * hd, qkv_bias, vb.pp("v_proj"), q)?,
            o_proj: Linear::load(nh * hd, h, cfg.attention_bias, vb.pp("o_proj"), q)?,
            n_heads: nh,
            n_kv: nkv,
            head_dim: hd,
            dropout: cfg.attention_dropout,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hd = self.head_dim;
        let parts = [&self.q_proj, &self.k_proj, &self.v_proj];
        let qkv = Linear::forward_fused_t(&parts, x, train)?;
        let [q, k, v] = <[Tensor; 3]>::try_from(qkv)
            .map_err(|_| candle_core::Error::msg("q/k/v projection: expected 3 outputs"))?;
        let q = q.reshape((b, t, self.n_heads, hd))?; // (B, T, nh, hd)
        let k = k.reshape((b, t, self.n_kv, hd))?; // (B, T, nkv, hd)
        let v = v.reshape((b, t, self.n_kv, hd))?; // (B, T, nkv, hd)
        let q = ops::rope(&q, rope.0, rope.1)?; // (B, T, nh, hd)
        let k = ops::rope(&k, rope.0, rope.1)?; // (B, T, nkv, hd)
        let params = AttentionParams {
            scale: 1.0 / (hd as f64).sqrt(),
            dropout: self.dropout,
            train,
        };
        let Some((cache, layer)) = cache else {
            // No cache (training, scoring a whole sequence): the heads stay side by side.
            let y = side_by_side_attention(
                &q.reshape((b, t, self.n_heads * hd))?,
                &k.reshape((b, t, self.n_kv * hd))?,
                &v.reshape((b, t, self.n_kv * hd))?,
                (self.n_heads, self.n_kv),
                Some(mask),
                params,
            )?; // (B, T, nh*hd)
            return self.o_proj.forward_t(&y, train);
        };
        // The cache keeps (B, nkv, S, hd): the heads split out.
        let q = q.transpose(1, 2)?; // (B, nh, T, hd)
        let k = k.transpose(1, 2)?.contiguous()?; // (B, nkv, T, hd)
        let v = v.transpose(1, 2)?.contiguous()?; // (B, nkv, T, hd)
        let (k, v) = cache.append(layer, &k, &v)?; // (B, nkv, S, hd)
        let y = scaled_dot_product_attention(&q, &k, &v, Some(mask), params)?; // (B, nh, T, hd)
        let y = y.transpose(1, 2)?.reshape((b, t, self.n_heads * hd))?; // (B, T, nh*hd)
        self.o_proj.forward_t(&y, train)
    }
}

#[derive(Clone, Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &LlamaConfig, vb: VarBuilder, q: Option<&QuantizedWeights>) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: Linear::load(h, i, false, vb.pp("gate_proj"), q)?,
            up_proj: Linear::load(h, i, false, vb.pp("up_proj"), q)?,
            down_proj: Linear::load(i, h, false, vb.pp("down_proj"), q)?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let gate_up = Linear::forward_fused_t(&[&self.gate_proj, &self.up_proj], x, train)?;
        let [gate, up] = <[Tensor; 2]>::try_from(gate_up)
            .map_err(|_| candle_core::Error::msg("gate/up projection: expected 2 outputs"))?;
        let act = ops::silu_mul(&gate, &up)?;
        self.down_proj.forward_t(&act, train)
    }
}

#[derive(Clone, Debug)]
struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &LlamaConfig, vb: VarBuilder, q: Option<&QuantizedWeights>) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"), q)?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(cfg, vb.pp("mlp"), q)?,
        })
    }
}

/// The Llama backbone with its LM head.
#[derive(Clone, Debug)]
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    cfg: LlamaConfig,
    device: Device,
}

impl Llama {
    /// Builds the model from weights named as in the checkpoint (`model.layers.0.self_attn.q_proj.weight`, ...).
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Self::load(cfg, vb, None)
    }

    /// Like [`Llama::new`], with the linear layers found in `quantized` running quantized
    /// matmuls (inference only). A tied head uses the quantized embedding table when present.
    pub fn load(
        cfg: &LlamaConfig,
        vb: VarBuilder,
        quantized: Option<&QuantizedWeights>,
    ) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let q = quantized;
        let m = vb.pp("model");
        let embed_tokens = Embedding::new(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::new(cfg, m.pp("layers").pp(i), q))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?;
        // Some checkpoints say `tie_word_embeddings` but still ship lm_head; prefer what is there.
        let tied = cfg.tie_word_embeddings
            && !vb.contains_tensor("lm_head.weight")
            && !q.is_some_and(|q| q.contains_key("lm_head.weight"));
        let lm_head = match (tied, q.and_then(|q| q.get("model.embed_tokens.weight"))) {
            (true, Some(qe)) => Linear::from_quantized(qe.clone(), None)?,
            (true, None) => Linear::from_weights(embed_tokens.weight().clone(), None),
            (false, _) => {
                Linear::load(cfg.hidden_size, cfg.vocab_size, false, vb.pp("lm_head"), q)?
            }
        };
        let device = vb.device().clone();
        let rotary = Rotary::new(&cfg.rotary(), vb.dtype(), &device)?;
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary,
            cfg: cfg.clone(),
            device,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }
}

impl CausalLm for Llama {
    fn forward_hidden(
        &self,
        input: &DecoderInput,
        mut cache: Option<&mut KvCache>,
        train: bool,
    ) -> Result<Tensor> {
        let (_b, t) = input.input_ids.dims2()?;
        let mask = attention_mask(&input.key_mask, t, true, &self.device)?; // (B, 1, T, S)
        let positions = positions_from_mask(&input.key_mask, t);
        let (cos, sin) = self.rotary.at(&positions)?; // (B, T, hd/2)
        let x = self.embed_tokens.forward(&input.input_ids)?; // (B, T, H)
        let mut x = splice_embeds(&x, &input.embeds)?; // (B, T, H)
        for (i, layer) in self.layers.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            let h = layer.input_layernorm.forward(&x)?;
            let h = layer.self_attn.forward(&h, (&cos, &sin), &mask, c, train)?;
            x = (x + h)?;
            let h = layer
                .mlp
                .forward(&layer.post_attention_layernorm.forward(&x)?, train)?;
            x = (x + h)?;
        }
        self.norm.forward(&x)
    }

    fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    fn linear_layers(&self) -> Vec<(String, &Linear)> {
        let mut out = Vec::with_capacity(7 * self.layers.len() + 1);
        for (i, b) in self.layers.iter().enumerate() {
            let (a, m) = (&b.self_attn, &b.mlp);
            for (name, l) in [
                ("self_attn.q_proj", &a.q_proj),
                ("self_attn.k_proj", &a.k_proj),
                ("self_attn.v_proj", &a.v_proj),
                ("self_attn.o_proj", &a.o_proj),
                ("mlp.gate_proj", &m.gate_proj),
                ("mlp.up_proj", &m.up_proj),
                ("mlp.down_proj", &m.down_proj),
            ] {
                out.push((format!("model.layers.{i}.{name}"), l));
            }
        }
        out.push(("lm_head".to_string(), &self.lm_head));
        out
    }

    fn max_context(&self) -> usize {
        self.cfg.max_position_embeddings
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn device(&self) -> &Device {
        &self.device
    }
}
