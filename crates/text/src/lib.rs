//! tasklm-text: tokenizers (from `tokenizer.json` or a GGUF vocabulary) with special tokens and
//! character offsets, and chat templates.

pub mod chat;
pub mod chat_mask;
mod error;
pub mod gguf_vocab;
pub mod tokenizer;

pub use chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
pub use chat_mask::{render_for_training, RenderedChat};
pub use error::{Result, TextError};
pub use gguf_vocab::GgufVocab;
pub use tokenizer::{TextTokenizer, TokenizerFiles};
