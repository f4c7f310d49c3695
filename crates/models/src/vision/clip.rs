//! CLIP's vision tower (Radford et al. 2021, "Learning Transferable Visual Models From Natural
//! Language Supervision").
//!
//! Reference: transformers v5.24.0, `models/clip/modeling_clip.py` (`CLIPVisionModel`,
//! `CLIPVisionTransformer`). A ViT with other names and three differences: the patch
//! convolution has no bias (`embeddings.patch_embedding`), the `[CLS]` vector is a plain (H)
//! parameter (`embeddings.class_embedding`) and the positions an embedding table
//! (`embeddings.position_embedding`, (patches + 1, H)); a layer norm runs *before* the blocks
//! (`pre_layrnorm`, transformers' spelling), the blocks are
//! `encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}`
//! with `quick_gelu`, and `post_layernorm` normalises only the pooled `[CLS]` vector.
//!
//! Quirks kept: a `CLIPModel` checkpoint (and transformers 4's `CLIPVisionModel`) keeps the
//! tower under `vision_model.` ([`ClipVision::PREFIX`]), transformers 5 saves a
//! `CLIPVisionModel` at the top (the registry takes either); `hidden_states[0]` is the pre-layernormed
//! embedding and `last_hidden_state` the last block's output, not normed (what LLaVA's
//! `vision_feature_layer` indexes).

use super::block::{
    check_tower, tower_activation, BlockConfig, BlockNames, BlockStack, PatchEmbedding, PatchGrid,
};
use super::VisionOutput;
use crate::heads::Pool;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tasklm_nn::{Activation, LayerNorm};

fn default_hidden() -> usize {
    768
}
fn default_intermediate() -> usize {
    3072
}
fn default_layers() -> usize {
    12
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_ln_eps() -> f64 {
    1e-5
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    32
}
fn default_channels() -> usize {
    3
}

/// `config.json` of a `CLIPVisionModel` (`model_type: clip_vision_model`), transformers' keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClipVisionConfig {
    #[serde(default = "default_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_layers")]
    pub num_attention_heads: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub attention_dropout: f32,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl ClipVisionConfig {
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

/// CLIP's names for the shared pre-norm block.
const NAMES: BlockNames = BlockNames {
    norm1: "layer_norm1",
    query: "self_attn.q_proj",
    key: "self_attn.k_proj",
    value: "self_attn.v_proj",
    out: "self_attn.out_proj",
    norm2: "layer_norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
};

/// CLIP's vision transformer.
#[derive(Clone, Debug)]
pub struct ClipVision {
    patches: PatchEmbedding,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    blocks: BlockStack,
    post_layernorm: LayerNorm,
    cfg: ClipVisionConfig,
}

impl ClipVision {
    /// Where `CLIPModel` checkpoints keep the tower.
    pub const PREFIX: &'static str = "vision_model";

    /// Builds the tower from weights under `vb` (`embeddings.patch_embedding.weight`, ...):
    /// pass `vb.pp("vision_model")` for a checkpoint that has the prefix.
    pub fn new(cfg: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
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
            qkv_bias: true,
            attn_dropout: cfg.attention_dropout,
            hidden_dropout: 0.0,
        };
        Ok(Self {
            patches: PatchEmbedding::new(grid, h, false, emb.pp("patch_embedding"))?,
            class_embedding: emb.get(h, "class_embedding")?,
            position_embedding: emb.get((grid.patches() + 1, h), "position_embedding.weight")?,
            pre_layrnorm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("pre_layrnorm"))?,
            blocks: BlockStack::new(
                cfg.num_hidden_layers,
                &block,
                &NAMES,
                vb.pp("encoder.layers"),
            )?,
            post_layernorm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &ClipVisionConfig {
        &self.cfg
    }

    /// Every layer's hidden states, the last one, and the pooled `post_layernorm(h[CLS])`, for
    /// pixels (B, C, S, S).
    pub fn forward_t(&self, pixels: &Tensor, train: bool) -> Result<VisionOutput> {
        let x = self.patches.forward(pixels, train)?; // (B, P, H)
        let (b, _, h) = x.dims3()?;
        let cls = self
            .class_embedding
            .reshape((1, 1, h))?
            .broadcast_as((b, 1, h))?; // (B, 1, H)
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.position_embedding)?; // (B, P+1, H)
        let x = self.pre_layrnorm.forward(&x)?;
        let hidden_states = self.blocks.forward_all(x, train)?;
        let Some(last) = hidden_states.last() else {
            candle_core::bail!("CLIP vision: no hidden states");
        };
        let last_hidden_state = last.clone();
        let pooled = self
            .post_layernorm
            .forward(&Pool::Cls.forward(&last_hidden_state, None)?)?; // (B, H)
        Ok(VisionOutput {
            hidden_states,
            last_hidden_state,
            pooler_output: Some(pooled.clone()),
            pooled,
        })
    }
}
