//! The tiny model configs the seq2seq training tests build fresh models from.

use anyhow::Result;
use std::path::{Path, PathBuf};

/// A 2 + 2 layer, 32-wide `--model-config` TOML for `arch` (t5, or bart/marian with room for
/// `positions` tokens), written into `dir`.
pub fn tiny_config(dir: &Path, arch: &str, positions: usize) -> Result<PathBuf> {
    let path = dir.join("small.toml");
    let text = if arch == "t5" {
        "d_model = 32\nd_kv = 8\nd_ff = 64\nnum_layers = 2\nnum_decoder_layers = 2\nnum_heads = 4\ndropout_rate = 0.0\n".to_string()
    } else {
        format!(
            "d_model = 32\nencoder_layers = 2\ndecoder_layers = 2\nencoder_attention_heads = 4\n\
             decoder_attention_heads = 4\nencoder_ffn_dim = 64\ndecoder_ffn_dim = 64\n\
             dropout = 0.0\nmax_position_embeddings = {positions}\n"
        )
    };
    std::fs::write(&path, text)?;
    Ok(path)
}
