//! Reading and writing safetensors checkpoints (single file or sharded with an index).

use crate::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The shard file names listed in a `model.safetensors.index.json`, sorted, each once.
pub fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::Io {
        path: index.into(),
        source: e,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::invalid(index, format!("invalid JSON: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::invalid(index, "missing object field `weight_map`"))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    shards.sort();
    shards.dedup();
    Ok(shards)
}

/// Loads every tensor of `model.safetensors`, or of the shards listed in
/// `model.safetensors.index.json`, from `dir`, converted to `dtype`.
pub fn load_safetensors_dir(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files = if single.exists() {
        vec![single]
    } else if index.exists() {
        let shards = shard_names(&index)?;
        shards.into_iter().map(|s| dir.join(s)).collect()
    } else {
        return Err(ModelError::invalid(
            dir,
            "no model.safetensors or model.safetensors.index.json in this model directory",
        ));
    };
    let mut out = HashMap::new();
    for f in files {
        if !f.exists() {
            return Err(ModelError::invalid(&f, "weights file listed but missing"));
        }
        let tensors = candle_core::safetensors::load(&f, device).map_err(|e| {
            ModelError::invalid(&f, format!("unreadable safetensors (truncated?): {e}"))
        })?;
        for (k, t) in tensors {
            let t = if t.dtype() == dtype {
                t
            } else {
                t.to_dtype(dtype)?
            };
            out.insert(k, t);
        }
    }
    Ok(out)
}

/// Writes `tensors` to `path` as safetensors.
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(tensors, path)
        .map_err(|e| ModelError::invalid(path, format!("could not write safetensors: {e}")))
}
