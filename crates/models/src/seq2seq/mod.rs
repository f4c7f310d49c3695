//! Encoder-decoder backbones: the encoder reads the whole source bidirectionally, the decoder
//! generates the target while cross-attending to it. T5 today; BART and Marian next, from the
//! same `nn` blocks.

pub mod t5;
pub mod t5_config;

pub use t5::{seq2seq_loss, T5Cache, T5};
pub use t5_config::{relative_position_bucket, T5Config};
