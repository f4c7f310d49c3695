//! Fused hot ops, each with a backward pass (candle custom ops).
//!
//! candle's own fused kernels (`softmax_last_dim`, `rms_norm`, `rope`, ...) have no backward pass,
//! so gradients silently stop at them. Every op here implements `bwd`, and each is checked
//! against central finite differences in `tests/ops_grad.rs`.

mod attention_core;
mod attention_heads;
mod bias;
mod cross_entropy;
mod dropout_mask;
mod frozen;
mod gelu;
mod kernel;
mod layer_norm;
mod linear;
mod matvec;
mod rms_norm;
mod rope;
mod silu;
mod softmax;

pub use attention_core::attention_core;
pub use attention_heads::attention_heads;
pub use bias::add_bias;
pub use cross_entropy::{masked_cross_entropy, per_token_cross_entropy, IGNORE_INDEX};
pub use dropout_mask::{dropout_mask, dropout_mask_seeded};
pub(crate) use dropout_mask::{next_dropout_seed, splitmix64};
pub use frozen::frozen_linear;
pub use gelu::gelu_erf;
pub(crate) use kernel::{contiguous_slice, f32_tensor, linear_backward, side_by_side_rows, simd};
pub use layer_norm::layer_norm;
pub use linear::{linear, linear_bias};
pub use matvec::{dot, linear_rows, linear_rows_group, MATVEC_MAX_ROWS};
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use silu::{silu, silu_mul};
pub use softmax::{scaled_masked_softmax, softmax_last_dim};
