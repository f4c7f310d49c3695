//! Encoder-decoder backbones: the encoder reads the whole source bidirectionally, the decoder
//! generates the target while cross-attending to it. T5, and BART / Marian (one post-norm
//! model with two kinds of positions), from the same `nn` blocks, behind one
//! [`EncoderDecoder`] trait and one [`Seq2SeqModel`] type.

pub mod bart;
pub mod bart_config;
pub mod cache;
pub mod model;
pub mod t5;
pub mod t5_config;

pub use bart::Bart;
pub use bart_config::{BartConfig, BartFlavor};
pub use cache::Seq2SeqCache;
pub use model::{seq2seq_loss, EncoderDecoder, Seq2SeqConfig, Seq2SeqModel};
pub use t5::T5;
pub use t5_config::{relative_position_bucket, T5Config};
