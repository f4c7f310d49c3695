//! tasklm-models: backbones that return hidden states, heads generic over them, and the
//! registry that maps a checkpoint's `architectures` (or GGUF `general.architecture`) to a builder.
//! Model files never see tokenizers, datasets or HTTP.

pub mod decoder;
mod error;
pub mod gguf;
pub mod registry;
pub mod weights;

pub use decoder::llama::{Llama, LlamaConfig};
pub use decoder::{CausalLm, DecoderInput};
pub use error::{ModelError, Result};
pub use registry::{Architecture, DecoderModel};
