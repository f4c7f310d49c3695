//! Loading a vision encoder (ViT, CLIP's vision tower) from a Hugging Face directory:
//! `config.json` through the registry, `model.safetensors` (or shards), no tokenizer.

use crate::checkpoint::{labels_of, read_json};
use crate::{HubError, ModelSource, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_models::{weights, Model, ModelArchitecture, ModelConfig, VisionConfig, VisionModel};

/// A loaded vision encoder with what it was loaded from.
pub struct VisionCheckpoint {
    pub dir: PathBuf,
    pub architecture: ModelArchitecture,
    pub config: VisionConfig,
    /// `config.json` as written.
    pub config_json: Value,
    pub model: VisionModel,
    /// `id2label` in id order, when the checkpoint has a trained classifier.
    pub labels: Option<Vec<String>>,
    /// Every tensor under the checkpoint's names (a classifier's `classifier.*` included).
    pub tensors: HashMap<String, Tensor>,
}

/// Loads the vision encoder of a Hugging Face directory; any other kind of model is an error
/// naming it.
pub fn load_vision(
    source: &ModelSource,
    dtype: DType,
    device: &Device,
) -> Result<VisionCheckpoint> {
    let ModelSource::HfDir(dir) = source else {
        return Err(HubError::file(
            source.path(),
            "a vision encoder is read from a Hugging Face directory (config.json, \
             model.safetensors)",
        ));
    };
    load_vision_dir(dir, dtype, device)
}

/// [`load_vision`] of a directory.
pub fn load_vision_dir(dir: &Path, dtype: DType, device: &Device) -> Result<VisionCheckpoint> {
    let cfg_path = dir.join("config.json");
    let json = read_json(&cfg_path)?;
    let architecture = ModelArchitecture::from_config(&json, &cfg_path)?;
    let config = match architecture.parse_config(&json, &cfg_path)? {
        ModelConfig::Vision(c) => c,
        other => {
            return Err(HubError::file(
                &cfg_path,
                format!(
                    "this checkpoint holds {}, and a vision encoder is needed here",
                    other.kind().with_article()
                ),
            ))
        }
    };
    let tensors = weights::load_safetensors_dir(dir, dtype, device)?;
    let vb = VarBuilder::from_tensors(tensors.clone(), dtype, device);
    let model = match architecture.build(&ModelConfig::Vision(config.clone()), vb, None) {
        Ok(Model::Vision(m)) => *m,
        Ok(other) => {
            return Err(HubError::file(
                dir,
                format!(
                    "built {}, not a vision encoder",
                    other.kind().with_article()
                ),
            ))
        }
        Err(e) => return Err(HubError::file(dir, format!("building the model: {e}"))),
    };
    Ok(VisionCheckpoint {
        dir: dir.to_path_buf(),
        architecture,
        labels: labels_of(&json),
        config,
        config_json: json,
        model,
        tensors,
    })
}
