//! The tiny random Llama of `tests/fixtures/tiny_llama` as a trainable objective.

#![allow(dead_code)]

use anyhow::Result;
use candle_core::{DType, Device};
use std::path::PathBuf;
use tasklm_data::{Features, IGNORE_INDEX};
use tasklm_models::{weights, Architecture, LlamaConfig};
use tasklm_train::{trainable_decoder, LmObjective};

pub fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_llama")
}

/// `n` samples of varied lengths (4..=15 tokens) and varied prompt lengths.
pub fn samples(n: usize) -> Vec<Features> {
    (0..n)
        .map(|i| {
            let len = 4 + (i * 7) % 12;
            let ids: Vec<u32> = (0..len)
                .map(|j| ((i * 31 + j * 17) % 120 + 3) as u32)
                .collect();
            let n_prompt = 1 + i % 3;
            let labels = ids
                .iter()
                .enumerate()
                .map(|(j, &t)| {
                    if j < n_prompt {
                        IGNORE_INDEX
                    } else {
                        i64::from(t)
                    }
                })
                .collect();
            Features::new(ids, labels)
        })
        .collect()
}

pub fn objective(train: Vec<Features>, eval: Vec<Features>) -> Result<LmObjective> {
    let dir = tiny_dir();
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let (model, params) = trainable_decoder(Architecture::Llama, &cfg, tensors)?;
    Ok(LmObjective {
        model,
        params,
        train,
        eval,
        pad_id: 0,
        eval_batch_size: 4,
        weights_file: "model.safetensors",
        files: Box::new(move |d| {
            std::fs::copy(dir.join("config.json"), d.join("config.json"))
                .map_err(tasklm_train::TrainError::objective)?;
            Ok(())
        }),
    })
}
