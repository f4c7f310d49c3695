//! ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").
//!
//! Reference: transformers v5.24.0, `models/vit/modeling_vit.py` (`ViTModel`,
//! `ViTForImageClassification`). The image is cut into p x p patches (a stride-p convolution,
//! `embeddings.patch_embeddings.projection`), a learned `[CLS]` vector (`embeddings.cls_token`,
//! (1, 1, H)) is put in front, learned positions (`embeddings.position_embeddings`,
//! (1, patches + 1, H)) are added, then pre-norm blocks
//! (`encoder.layer.N.{layernorm_before, attention.attention.{query,key,value},
//! attention.output.dense, layernorm_after, intermediate.dense, output.dense}`) and a final
//! `layernorm`. `ViTModel` may add a pooler `tanh(pooler.dense(h[CLS]))`; the classification
//! model has none and its `classifier` reads the normed `h[CLS]`.
//!
//! Quirks kept: in a `ViTForImageClassification` checkpoint the backbone sits under `vit.`, in
//! a bare `ViTModel` at the top ([`Vit::PREFIX`]); `hidden_states` are taken before the final
//! layernorm (the last one differs from `last_hidden_state`). Position interpolation for other
//! image sizes (`interpolate_pos_encoding`) is not supported: a wrong size is an error.

use super::block::{
    check_tower, tower_activation, BlockConfig, BlockNames, BlockStack, PatchEmbedding, PatchGrid,
};
use super::VisionOutput;
use crate::heads::Pool;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tasklm_nn::{dropout, Activation, LayerNorm, Linear};

fn default_act() -> String {
    "gelu".into()
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    16
}
fn default_channels() -> usize {
    3
}
fn default_true() -> bool {
    true
}
fn default_init_range() -> f64 {
    0.02
}

/// `config.json` of a ViT checkpoint, with transformers' key names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViTConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub hidden_dropout_prob: f32,
    #[serde(default)]
    pub attention_probs_dropout_prob: f32,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl ViTConfig {
    /// Checks what the forward pass relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        check_tower(
            self.hidden_size,
            self.num_attention_heads,
            &self.hidden_act,
            self.grid(),
        )
    }

    fn activation(&self) -> std::result::Result<Activation, String> {
        tower_activation(&self.hidden_act)
    }

    pub(crate) fn grid(&self) -> PatchGrid {
        PatchGrid {
            channels: self.num_channels,
            image_size: self.image_size,
            patch: self.patch_size,
        }
    }
}

/// ViT's names for the shared pre-norm block.
const NAMES: BlockNames = BlockNames {
    norm1: "layernorm_before",
    query: "attention.attention.query",
    key: "attention.attention.key",
    value: "attention.attention.value",
    out: "attention.output.dense",
    norm2: "layernorm_after",
    fc1: "intermediate.dense",
    fc2: "output.dense",
};

/// The ViT backbone.
#[derive(Clone, Debug)]
pub struct Vit {
    patches: PatchEmbedding,
    cls_token: Tensor,
    position_embeddings: Tensor,
    blocks: BlockStack,
    layernorm: LayerNorm,
    pooler: Option<Linear>,
    cfg: ViTConfig,
}

impl Vit {
    /// Where a `ViTForImageClassification` checkpoint keeps the backbone.
    pub const PREFIX: &'static str = "vit";

    /// Builds the backbone from weights named as in a `ViTModel` (`embeddings.cls_token`, ...);
    /// pass `vb.pp("vit")` for a `ViTForImageClassification` checkpoint.
    pub fn new(cfg: &ViTConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let h = cfg.hidden_size;
        let grid = cfg.grid();
        let emb = vb.pp("embeddings");
        let block = BlockConfig {
            hidden: h,
            heads: cfg.num_attention_heads,
            intermediate: cfg.intermediate_size,
            eps: cfg.layer_norm_eps,
            act: cfg.activation().map_err(candle_core::Error::msg)?,
            qkv_bias: cfg.qkv_bias,
            attn_dropout: cfg.attention_probs_dropout_prob,
            hidden_dropout: cfg.hidden_dropout_prob,
        };
        let pooler = if vb.contains_tensor("pooler.dense.weight") {
            Some(Linear::new(h, h, true, vb.pp("pooler").pp("dense"))?)
        } else {
            None
        };
        Ok(Self {
            patches: PatchEmbedding::new(grid, h, true, emb.pp("patch_embeddings.projection"))?,
            cls_token: emb.get((1, 1, h), "cls_token")?,
            position_embeddings: emb.get((1, grid.patches() + 1, h), "position_embeddings")?,
            blocks: BlockStack::new(
                cfg.num_hidden_layers,
                &block,
                &NAMES,
                vb.pp("encoder.layer"),
            )?,
            layernorm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("layernorm"))?,
            pooler,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &ViTConfig {
        &self.cfg
    }

    /// Every layer's hidden states, the normed last one, and the normed `[CLS]` vector a
    /// classifier reads (as `ViTForImageClassification`), for pixels (B, C, S, S).
    pub fn forward_t(&self, pixels: &Tensor, train: bool) -> Result<VisionOutput> {
        let x = self.patches.forward(pixels, train)?; // (B, P, H)
        let (b, _, h) = x.dims3()?;
        let cls = self.cls_token.broadcast_as((b, 1, h))?; // (B, 1, H)
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.position_embeddings)?; // (B, P+1, H)
        let x = dropout(&x, self.cfg.hidden_dropout_prob, train)?;
        let hidden_states = self.blocks.forward_all(x, train)?;
        let Some(last) = hidden_states.last() else {
            candle_core::bail!("ViT: no hidden states");
        };
        let last_hidden_state = self.layernorm.forward(last)?;
        let pooled = Pool::Cls.forward(&last_hidden_state, None)?; // (B, H)
        let pooler_output = match &self.pooler {
            Some(p) => Some(p.forward_t(&pooled, train)?.tanh()?),
            None => None,
        };
        Ok(VisionOutput {
            hidden_states,
            last_hidden_state,
            pooled,
            pooler_output,
        })
    }
}
