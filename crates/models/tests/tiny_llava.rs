//! LLaVA against transformers' `LlavaForConditionalGeneration` on a tiny random model
//! (`scripts/golden/llava.py`, tests/fixtures/tiny_llava): the projected image features, the
//! logits with the features spliced in at the placeholders, the loss on the answer tokens and
//! every parameter's gradient. Tolerances: 1e-4 absolute on features and logits, 1e-5 on the
//! loss, 1e-4 on gradients relative to each gradient's largest entry (at least 1).

mod common;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use common::{assert_gradient_close, fixture, max_abs_diff};
use std::collections::HashMap;
use tasklm_models::vision::llava::{Llava, LlavaConfig};
use tasklm_models::DecoderInput;

fn config() -> Result<LlavaConfig> {
    let path = fixture("tiny_llava").join("config.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    Ok(LlavaConfig::from_json(&json, &path)?)
}

/// Mean cross-entropy of position t's logits against label t + 1, over labels other than
/// -100 (transformers' causal LM loss).
fn shifted_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let labels = labels.to_vec2::<i64>()?;
    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    for (r, row) in labels.iter().enumerate() {
        for (i, &l) in row.iter().enumerate().skip(1) {
            if l >= 0 {
                rows.push((r * t + i - 1) as u32);
                targets.push(l as u32);
            }
        }
    }
    let flat = logits.reshape((b * t, v))?;
    let picked = flat.index_select(&Tensor::new(rows.as_slice(), &Device::Cpu)?, 0)?;
    let targets = Tensor::new(targets.as_slice(), &Device::Cpu)?;
    Ok(candle_nn::loss::cross_entropy(&picked, &targets)?)
}

#[test]
fn tiny_llava_matches_transformers() -> Result<()> {
    let dir = fixture("tiny_llava");
    let cfg = config()?;
    assert_eq!(cfg.tokens_per_image(), 16);
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let vars: HashMap<String, Var> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let map = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let model = Llava::new(
        &cfg,
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu),
    )?;
    let g = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;

    let pixels = &g["pixel_values"];
    let feats = model.image_features(pixels, false)?;
    let d = max_abs_diff(&feats, &g["image_features"])?;
    assert!(d <= 1e-4, "image features differ from transformers by {d}");

    let ids = g["input_ids"].to_dtype(DType::U32)?;
    let (b, t) = ids.dims2()?;
    let logits = model.forward(DecoderInput::new(ids, vec![vec![1; t]; b]), pixels, false)?;
    let d = max_abs_diff(&logits, &g["logits"])?;
    assert!(d <= 1e-4, "logits differ from transformers by {d}");

    let loss = shifted_loss(&logits, &g["labels"])?;
    let (got, want) = (loss.to_scalar::<f32>()?, g["loss"].to_vec1::<f32>()?[0]);
    assert!((got - want).abs() <= 1e-5, "loss {got} vs {want}");
    let grads = loss.backward()?;
    let mut checked = 0;
    for (name, var) in &vars {
        let want = g
            .get(&format!("grad.{name}"))
            .with_context(|| format!("no PyTorch gradient for {name}"))?;
        // Parameters that feed nothing at this feature layer get no gradient on either side.
        let got = match grads.get(var.as_tensor()) {
            Some(got) => got.clone(),
            None => want.zeros_like()?,
        };
        assert_gradient_close(name, &got, want)?;
        checked += 1;
    }
    assert_eq!(checked, 64, "every saved tensor checked");
    Ok(())
}

#[test]
fn placeholders_must_match_the_images() -> Result<()> {
    let cfg = config()?;
    let dir = fixture("tiny_llava");
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )?
    };
    let model = Llava::new(&cfg, vb)?;
    let g = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;
    let pixels = &g["pixel_values"];
    // 15 placeholders for an image of 16 features.
    let mut row = vec![5u32; 20];
    for id in row.iter_mut().skip(2).take(15) {
        *id = 60;
    }
    let input = DecoderInput::from_rows(&[row.clone(), row], &Device::Cpu)?;
    let e = model.forward(input, pixels, false).unwrap_err().to_string();
    assert!(
        e.contains("15 image placeholders") && e.contains("16 features"),
        "{e}"
    );
    // Two images, one row of placeholders.
    let mut one = vec![5u32; 20];
    for id in one.iter_mut().skip(2).take(16) {
        *id = 60;
    }
    let input = DecoderInput::from_rows(&[one, vec![5u32; 20]], &Device::Cpu)?;
    let e = model.forward(input, pixels, false).unwrap_err().to_string();
    assert!(e.contains("2 images but only 1 runs"), "{e}");
    // A config that names an image token past the vocabulary.
    let path = dir.join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    json["image_token_index"] = 64.into();
    let e = LlavaConfig::from_json(&json, &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.json") && e.contains("image_token_index"),
        "{e}"
    );
    Ok(())
}
