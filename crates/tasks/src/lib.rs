//! tasklm-tasks: each task family end to end (records, encoding, objective, metric), over the
//! shared trainer. The CLI and server are thin layers over these functions.

pub mod chat;
pub mod classifier;
pub mod code_exec;
pub mod encoder_classify;
pub mod encoder_input;
pub mod encoder_ner;
pub mod encoder_qa;
mod error;
pub mod generative;
pub mod label_prompt;
pub mod label_task;
pub mod provenance;
pub mod sft;

pub use error::{Result, TaskError};
