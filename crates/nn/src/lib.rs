//! tasklm-nn: the building blocks every model composes, each defined once.
//!
//! Hot ops are fused CPU kernels with a backward pass ([`ops`]), so one code path serves
//! training and inference. Every projection is a [`Linear`] (dense, quantized, or a LoRA-adapted
//! base: see [`LinearWeight`] and [`lora`]).

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod activation;
pub mod attention;
pub mod kv_cache;
pub mod layers;
pub mod lora;
pub mod lora_linear;
pub mod mask;
pub mod ops;
pub mod quant;
pub mod rotary;

pub use activation::Activation;
pub use attention::{
    biased_attention, scaled_dot_product_attention, side_by_side_attention, AttentionParams,
    HeadLayout, MultiHeadAttention,
};
pub use kv_cache::KvCache;
pub use layers::{dropout, Embedding, LayerNorm, Linear, LinearWeight, QuantizedWeights, RmsNorm};
pub use lora::{linear_layer_names, Adapted, LoraSpec};
pub use mask::{attention_mask, positions_from_mask, SHARED_SEGMENT};
pub use rotary::{Rotary, RotaryConfig};
