//! tasklm-hub: where models come from. The built-in catalog, `pull` into the local cache
//! (`$TASKLM_HOME`, default `~/.cache/tasklm`) with sha256 verification, resolving a `--model`
//! argument (directory, `.gguf` file, catalog name, hub id), and loading a checkpoint with its
//! tokenizer: [`load_model`] loads any kind into one [`Checkpoint`] (the entry point to use);
//! the older decoder and encoder entry points wrap the same reading and registry dispatch.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod adapter;
pub mod catalog;
pub mod checkpoint;
pub mod embed;
pub mod encoder;
mod error;
pub mod load;
pub mod merge;
pub mod pull;
pub mod resolve;
pub mod save;
mod shared_base;
pub mod testing;
pub mod vision;

pub use adapter::{apply_adapter, merge_adapter, read_adapter, Adapter, AdapterConfig};
pub use catalog::{CatalogEntry, CATALOG};
pub use checkpoint::{load_model, Checkpoint, EncoderSpecials};
pub use embed::Embedder;
pub use encoder::{load_encoder, model_kind, EncoderCheckpoint, ModelKind};
pub use error::{HubError, Result};
pub use load::{
    load_checkpoint, load_checkpoint_with, load_decoder, load_decoder_with, DecoderCheckpoint,
    LoadOptions, LoadedDecoder,
};
pub use merge::write_merged;
pub use resolve::{resolve, resolve_adapter, ModelSource};
pub use save::{hf_config, write_model_files, write_tokenizer_files};
pub use shared_base::{share_bases, SharedBases};
pub use vision::{load_vision, load_vision_dir, VisionCheckpoint};
