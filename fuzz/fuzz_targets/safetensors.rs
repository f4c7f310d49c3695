//! A safetensors file as tasklm loads weights (header checked, every tensor converted to f32),
//! and the same bytes as a `model.safetensors.index.json`.
#![no_main]

use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tasklm_models::weights;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("model.safetensors");
    if let Ok(tensors) = weights::load_safetensors_bytes(path, data, DType::F32, &Device::Cpu) {
        for t in tensors.values() {
            let _ = t.flatten_all().and_then(|t| t.sum_all());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = weights::parse_shard_index(Path::new("model.safetensors.index.json"), text);
    }
});
