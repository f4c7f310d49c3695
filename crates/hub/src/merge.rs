//! `tasklm merge`: a LoRA adapter folded into its base, written as a plain Hugging Face model
//! directory (`config.json`, `model.safetensors`, tokenizer files) that loads without PEFT.

use crate::adapter::{merge_adapter, read_adapter, ADAPTER_WEIGHTS};
use crate::checkpoint::read_files;
use crate::{write_model_files, write_tokenizer_files, HubError, LoadOptions, ModelSource, Result};
use candle_core::Device;
use std::path::Path;
use tasklm_models::{ModelArchitecture, ModelConfig};

/// Merges the adapter `source` names (an [`ModelSource::Adapter`]) into its base's weights
/// (`W + scale * B A`, the saved modules in place) and writes the model into `out`. The base's
/// own `config.json` is kept when it has one; the tokenizer is the adapter directory's when it
/// has one, else the base's.
pub fn write_merged(source: &ModelSource, out: &Path) -> Result<()> {
    let ModelSource::Adapter { dir, base } = source else {
        return Err(HubError::file(
            source.path(),
            "not a LoRA adapter directory (no adapter_config.json): nothing to merge",
        ));
    };
    let device = Device::Cpu;
    let mut files = read_files(base, LoadOptions::default(), &device)?;
    // A trained encoder adapter's config.json (its head's labels) wins over the base's.
    if files.config_json.is_some() && dir.join("config.json").is_file() {
        files.config_json = Some(crate::checkpoint::read_json(&dir.join("config.json"))?);
    }
    let adapter = read_adapter(dir, &device)?;
    merge_adapter(&mut files.tensors, &adapter, &dir.join(ADAPTER_WEIGHTS))?;
    std::fs::create_dir_all(out).map_err(|e| HubError::file(out, e))?;
    let tok_dir = if dir.join("tokenizer.json").is_file() {
        files.tokenizer = tasklm_text::TextTokenizer::from_dir(dir)?;
        dir.as_path()
    } else {
        base.path()
    };
    match (files.architecture, &files.config, &files.config_json) {
        (ModelArchitecture::Decoder(arch), ModelConfig::Decoder(cfg), None) => {
            write_model_files(out, arch, cfg, &files.tokenizer)?;
        }
        (ModelArchitecture::Decoder(_), ModelConfig::Decoder(cfg), Some(json)) => {
            write_config(out, json)?;
            write_tokenizer_files(out, cfg, &files.tokenizer)?;
        }
        (_, _, json) => {
            let json = json
                .as_ref()
                .ok_or_else(|| HubError::file(base.path(), "an encoder needs its config.json"))?;
            write_config(out, json)?;
            crate::encoder::copy_tokenizer_files(tok_dir, out)?;
        }
    }
    // The generation defaults (an encoder-decoder's start id, beams), the adapter's first.
    let generation = [dir.as_path(), base.path()]
        .map(|d| d.join("generation_config.json"))
        .into_iter()
        .find(|p| p.is_file());
    if let Some(from) = generation {
        let to = out.join("generation_config.json");
        std::fs::copy(&from, &to).map_err(|e| HubError::file(&from, e))?;
    }
    let weights = out.join("model.safetensors");
    candle_core::safetensors::save(&files.tensors, &weights)
        .map_err(|e| HubError::file(&weights, e))
}

fn write_config(out: &Path, json: &serde_json::Value) -> Result<()> {
    let path = out.join("config.json");
    let text = serde_json::to_string_pretty(json).map_err(|e| HubError::file(&path, e))?;
    std::fs::write(&path, text + "\n").map_err(|e| HubError::file(&path, e))
}
