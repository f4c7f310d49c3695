//! Vision encoders: images (B, C, S, S) in, patch hidden states out. ViT ([`vit`]) and CLIP's
//! vision tower ([`clip`]) share the patch embedding and the pre-norm block ([`block`]); a
//! [`VisionModel`] is either, behind one forward.

pub(crate) mod block;
pub mod clip;
pub mod llava;
pub mod vit;

use candle_core::{Result, Tensor};
use clip::{ClipVision, ClipVisionConfig};
use vit::{ViTConfig, Vit};

/// What a vision encoder returns for a batch of images.
#[derive(Clone, Debug)]
pub struct VisionOutput {
    /// The embeddings and each block's output, `layers + 1` tensors (B, 1 + patches, H), as
    /// transformers' `hidden_states` (so `vision_feature_layer` indexes them the same way).
    pub hidden_states: Vec<Tensor>,
    /// ViT: the last block's output after the final layernorm; CLIP: the last block's output.
    pub last_hidden_state: Tensor,
    /// The (B, H) vector a classification head reads: ViT's normed `[CLS]`
    /// (`ViTForImageClassification`), CLIP's `post_layernorm([CLS])`.
    pub pooled: Tensor,
    /// transformers' `pooler_output`: ViT's `tanh(pooler(...))` when the checkpoint has a
    /// pooler, CLIP's pooled vector; None for a ViT without pooler.
    pub pooler_output: Option<Tensor>,
}

/// A vision encoder's config, by architecture.
#[derive(Clone, Debug, PartialEq)]
pub enum VisionConfig {
    Vit(ViTConfig),
    Clip(ClipVisionConfig),
}

impl VisionConfig {
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Vit(c) => c.hidden_size,
            Self::Clip(c) => c.hidden_size,
        }
    }

    /// The side of the square images it takes.
    pub fn image_size(&self) -> usize {
        match self {
            Self::Vit(c) => c.image_size,
            Self::Clip(c) => c.image_size,
        }
    }

    pub fn num_channels(&self) -> usize {
        match self {
            Self::Vit(c) => c.num_channels,
            Self::Clip(c) => c.num_channels,
        }
    }

    /// Sequence length: the patches and `[CLS]`.
    pub fn positions(&self) -> usize {
        match self {
            Self::Vit(c) => c.grid().patches() + 1,
            Self::Clip(c) => c.grid().patches() + 1,
        }
    }
}

/// A built vision encoder.
#[derive(Clone, Debug)]
pub enum VisionModel {
    Vit(Vit),
    Clip(ClipVision),
}

impl VisionModel {
    /// Every hidden state and the pooled vector for pixels (B, C, S, S); `train` turns dropout
    /// on.
    pub fn forward_t(&self, pixels: &Tensor, train: bool) -> Result<VisionOutput> {
        match self {
            Self::Vit(m) => m.forward_t(pixels, train),
            Self::Clip(m) => m.forward_t(pixels, train),
        }
    }

    pub fn config(&self) -> VisionConfig {
        match self {
            Self::Vit(m) => VisionConfig::Vit(m.config().clone()),
            Self::Clip(m) => VisionConfig::Clip(m.config().clone()),
        }
    }
}
