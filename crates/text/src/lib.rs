//! tasklm-text: tokenizers (from `tokenizer.json` or a GGUF vocabulary) with special tokens and
//! character offsets, and chat templates.

pub mod chat;
mod error;
pub mod gguf_vocab;
pub mod tokenizer;

pub use chat::{ChatMessage, ChatTemplate};
pub use error::{Result, TextError};
pub use gguf_vocab::GgufVocab;
pub use tokenizer::TextTokenizer;
