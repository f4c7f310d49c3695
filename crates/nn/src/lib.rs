//! tasklm-nn: the building blocks every model composes, each defined once.
//!
//! Hot ops are fused CPU kernels with a backward pass ([`ops`]), so one code path serves
//! training and inference. Every projection is a [`Linear`] (dense, quantized, and the variant
//! an adapter will add: see [`LinearWeight`]).

pub mod attention;
pub mod layers;
pub mod mask;
pub mod ops;
pub mod rotary;

pub use attention::{scaled_dot_product_attention, AttentionParams, KvCache};
pub use layers::{dropout, Embedding, LayerNorm, Linear, LinearWeight, QuantizedWeights, RmsNorm};
pub use mask::{attention_mask, positions_from_mask};
pub use rotary::{Rotary, RotaryConfig};
