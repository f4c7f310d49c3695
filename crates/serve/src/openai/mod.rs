//! The OpenAI-compatible endpoints.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod fields;
pub mod models;
pub mod respond;
pub mod sampling;
