//! Training is proven by learning: AdamW on the tiny Llama drives the SFT loss on a tiny batch
//! below 0.1, and the loss computed on scored positions only equals the full-logits loss.

use anyhow::Result;
use candle_core::{DType, Device, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_data::{collate, Features, IGNORE_INDEX};
use tasklm_models::{weights, Architecture, DecoderModel, LlamaConfig};
use tasklm_train::{causal_lm_loss, clip_grad_norm, AdamW, AdamWConfig};

fn tiny() -> Result<(DecoderModel, Vec<(String, Var)>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_llama");
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let mut vars: Vec<(String, Var)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let map: HashMap<String, candle_core::Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let model = Architecture::Llama.build(
        &cfg,
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu),
    )?;
    Ok((model, vars))
}

fn features() -> Vec<Features> {
    // Prompt tokens unscored, completion scored, rows of different lengths.
    let a: Vec<u32> = vec![5, 17, 33, 2, 90, 41, 7, 64, 12, 3];
    let b: Vec<u32> = vec![100, 8, 55, 21, 76, 30];
    let label = |ids: &[u32], n_prompt: usize| -> Vec<i64> {
        ids.iter()
            .enumerate()
            .map(|(i, &t)| {
                if i < n_prompt {
                    IGNORE_INDEX
                } else {
                    i64::from(t)
                }
            })
            .collect()
    };
    vec![
        Features::new(a.clone(), label(&a, 3)),
        Features::new(b.clone(), label(&b, 2)),
    ]
}

#[test]
fn adamw_overfits_a_tiny_batch() -> Result<()> {
    let (model, vars) = tiny()?;
    let batch = collate(&features(), 0, &Device::Cpu)?;
    let params: Vec<Var> = vars.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        },
    )?;
    let mut first = None;
    let mut last = f32::NAN;
    for _ in 0..150 {
        let (sum, n) = causal_lm_loss(model.as_ref(), &batch, true)?;
        let loss = (sum / n as f64)?;
        last = loss.to_scalar::<f32>()?;
        first.get_or_insert(last);
        let mut grads = loss.backward()?;
        clip_grad_norm(&mut grads, &params, 1.0)?;
        opt.step(&grads, 1e-2)?;
    }
    let first = first.unwrap_or(f32::NAN);
    assert!(first > 3.0, "untrained loss {first} should be near ln(128)");
    assert!(last < 0.1, "loss only fell from {first} to {last}");
    Ok(())
}

#[test]
fn scored_position_loss_equals_full_logits_loss() -> Result<()> {
    let (model, _) = tiny()?;
    let batch = collate(&features(), 0, &Device::Cpu)?;
    assert_eq!(batch.n_scored, 7 + 4);
    let (sum, n) = causal_lm_loss(model.as_ref(), &batch, false)?;
    assert_eq!(n, batch.n_scored);
    // The same loss from the full (B, T, V) logits.
    let input = tasklm_models::DecoderInput {
        input_ids: batch.input_ids.clone(),
        key_mask: batch.key_mask.clone(),
        embeds: Vec::new(),
    };
    let logits = model.lm_logits(&model.forward_hidden(&input, None, false)?)?;
    let t = logits.dim(1)?;
    let (full, n2) = tasklm_nn::ops::masked_cross_entropy(
        &logits.narrow(1, 0, t - 1)?,
        &batch.labels.narrow(1, 1, t - 1)?,
    )?;
    assert_eq!(n, n2);
    let d = (sum.to_scalar::<f32>()? - full.to_scalar::<f32>()?).abs();
    assert!(d < 1e-4, "losses differ by {d}");
    Ok(())
}
