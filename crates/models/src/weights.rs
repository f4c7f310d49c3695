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
    parse_shard_index(index, &text)
}

/// [`shard_names`] over the index's text; `index` names it in errors. A shard must be a plain
/// file name (no directory part), so an index cannot point outside its model directory.
pub fn parse_shard_index(index: &Path, text: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(text)
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
    if let Some(bad) = shards.iter().find(|s| {
        s.is_empty() || s.as_str() == "." || s.as_str() == ".." || s.contains(['/', '\\'])
    }) {
        return Err(ModelError::invalid(
            index,
            format!("weight_map names shard `{bad}`: expected a file name in this directory"),
        ));
    }
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
        let bytes = std::fs::read(&f).map_err(|e| ModelError::Io {
            path: f.clone(),
            source: e,
        })?;
        out.extend(load_safetensors_bytes(&f, &bytes, dtype, device)?);
    }
    Ok(out)
}

/// Every tensor of the safetensors file whose bytes are `data`, converted to `dtype`; `path`
/// names it in errors. The safetensors reader checks the header against `data` (header at most
/// 100 MB, every tensor's offsets inside the data, no overlaps, shapes without overflow) before
/// any tensor is built, so a header claiming more than the file holds is refused.
pub fn load_safetensors_bytes(
    path: &Path,
    data: &[u8],
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::safetensors::load_buffer(data, device).map_err(|e| {
        ModelError::invalid(path, format!("unreadable safetensors (truncated?): {e}"))
    })?;
    let mut out = HashMap::with_capacity(tensors.len());
    for (k, t) in tensors {
        let t = if t.dtype() == dtype {
            t
        } else {
            t.to_dtype(dtype).map_err(|e| {
                ModelError::invalid(
                    path,
                    format!(
                        "tensor `{k}` ({:?}) cannot be converted to {dtype:?}: {e}",
                        t.dtype()
                    ),
                )
            })?
        };
        out.insert(k, t);
    }
    Ok(out)
}

/// Writes `tensors` to `path` as safetensors.
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(tensors, path)
        .map_err(|e| ModelError::invalid(path, format!("could not write safetensors: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file: the 8-byte header length, the JSON header, then `data`.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend(header.as_bytes());
        v.extend(data);
        v
    }

    fn load(bytes: &[u8]) -> std::result::Result<HashMap<String, Tensor>, String> {
        load_safetensors_bytes(Path::new("w.safetensors"), bytes, DType::F32, &Device::Cpu)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn absurd_shapes_offsets_and_lengths_are_refused() {
        let huge =
            r#"{"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}"#;
        let err = load(&file(huge, &[0; 8])).expect_err("2^80 elements");
        assert!(
            err.starts_with("w.safetensors: unreadable safetensors"),
            "{err}"
        );
        let past = r#"{"w":{"dtype":"F32","shape":[2684354560],"data_offsets":[0,10737418240]}}"#;
        assert!(
            load(&file(past, &[0; 8])).is_err(),
            "a 10 GB tensor in 8 bytes"
        );
        let mismatch = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
        assert!(
            load(&file(mismatch, &[0; 8])).is_err(),
            "4 floats in 8 bytes"
        );
        let mut claims = (1u64 << 40).to_le_bytes().to_vec();
        claims.extend(b"{}");
        assert!(load(&claims).is_err(), "a 1 TB header");
        assert!(load(&[1, 2, 3]).is_err(), "shorter than the length prefix");
    }

    #[test]
    fn tensors_load_and_convert() -> std::result::Result<(), String> {
        let h = r#"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}}"#;
        // f16 1.5 is 0x3e00, -2.0 is 0xc000.
        let mut data = vec![0x00, 0x3e, 0x00, 0xc0];
        data.extend(7i64.to_le_bytes());
        let t = load(&file(h, &data))?;
        let a = t["a"].to_vec1::<f32>().map_err(|e| e.to_string())?;
        assert_eq!(a, [1.5, -2.0]);
        assert_eq!(t["b"].to_vec1::<f32>().map_err(|e| e.to_string())?, [7.0]);
        Ok(())
    }

    #[test]
    fn shard_index_names_stay_inside_the_directory() {
        let idx = Path::new("model.safetensors.index.json");
        let ok = r#"{"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-1.safetensors"}}"#;
        assert_eq!(
            parse_shard_index(idx, ok).map_err(|e| e.to_string()),
            Ok(vec![
                "m-1.safetensors".to_string(),
                "m-2.safetensors".to_string()
            ])
        );
        let evil = r#"{"weight_map": {"a": "../../etc/passwd"}}"#;
        let err = parse_shard_index(idx, evil)
            .expect_err("outside")
            .to_string();
        assert!(err.contains("`../../etc/passwd`"), "{err}");
        let err = parse_shard_index(idx, "{}")
            .expect_err("no map")
            .to_string();
        assert!(err.contains("weight_map"), "{err}");
    }
}
