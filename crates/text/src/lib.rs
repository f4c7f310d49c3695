//! tasklm-text: tokenizers (from `tokenizer.json` or a GGUF vocabulary) with special tokens and
//! character offsets, and chat templates.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chat;
pub mod chat_mask;
mod error;
pub mod gguf_vocab;
pub mod sentencepiece;
pub mod tokenizer;
pub mod trainer;

pub use chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
pub use chat_mask::{render_for_training, RenderedChat};
pub use error::{Result, TextError};
pub use gguf_vocab::GgufVocab;
pub use tokenizer::{TextTokenizer, TokenizerFiles};
