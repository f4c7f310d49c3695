//! tasklm-models: backbones that return hidden states, heads generic over them (and [`Pool`]),
//! and the [`registry`] that maps a checkpoint's `architectures` / `model_type` (or GGUF
//! `general.architecture`) to its [`ModelKind`] and builder.
//! Model files never see tokenizers, datasets or HTTP.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod decoder;
pub mod encoder;
mod error;
pub mod gguf;
pub mod heads;
pub mod registry;
pub mod seq2seq;
pub mod vision;
pub mod weights;

pub use decoder::llama::{Llama, LlamaConfig};
pub use decoder::{splice_embeds, CausalLm, DecoderInput, EmbedSpan};
pub use encoder::bert::{Bert, BertConfig, BERT_PREFIX};
pub use encoder::EncoderInput;
pub use error::{ModelError, Result};
pub use heads::{ClassifierHead, Pool, SpanHead};
pub use registry::{
    Architecture, DecoderArchitecture, DecoderModel, EncoderArchitecture, Model, ModelArchitecture,
    ModelConfig, ModelKind, Seq2SeqArchitecture, VisionArchitecture,
};
pub use seq2seq::{BartConfig, EncoderDecoder, Seq2SeqConfig, Seq2SeqModel, T5Config, T5};
pub use vision::clip::{ClipVision, ClipVisionConfig};
pub use vision::vit::{ViTConfig, Vit};
pub use vision::{VisionConfig, VisionModel, VisionOutput};
