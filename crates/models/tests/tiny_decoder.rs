//! Golden parity of the decoder on tiny random checkpoints written by
//! `scripts/golden/decoder.py` (logits, loss and every gradient against PyTorch), plus the
//! invariances: a padded batch equals single rows, cached decoding equals uncached.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_models::{weights, Architecture, DecoderInput, DecoderModel, LlamaConfig};
use tasklm_nn::ops::masked_cross_entropy;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

struct Tiny {
    model: DecoderModel,
    vars: HashMap<String, Var>,
    golden: HashMap<String, Tensor>,
}

fn load(kind: &str) -> Result<Tiny> {
    let dir = fixture(&format!("tiny_{kind}"));
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let arch = Architecture::from_hf(&cfg.architectures[0]).context("architecture")?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let vars: HashMap<String, Var> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let as_tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(as_tensors, DType::F32, &Device::Cpu);
    let model = arch.build(&cfg, vb)?;
    let golden = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;
    Ok(Tiny {
        model,
        vars,
        golden,
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn rows(ids: &Tensor) -> Result<Vec<Vec<u32>>> {
    Ok(ids.to_dtype(DType::U32)?.to_vec2::<u32>()?)
}

fn check_golden(kind: &str) -> Result<()> {
    let t = load(kind)?;
    let ids = rows(&t.golden["input_ids"])?;
    let input = DecoderInput::from_rows(&ids, &Device::Cpu)?;
    let hidden = t.model.forward_hidden(&input, None, false)?;
    let logits = t.model.lm_logits(&hidden)?; // (B, T, V)
    let d = max_abs_diff(&logits, &t.golden["logits"])?;
    assert!(d <= 1e-4, "{kind}: logits differ from transformers by {d}");

    // transformers' causal-LM loss: predict token t+1 from position t.
    let (b, tl, v) = logits.dims3()?;
    let shifted = logits.narrow(1, 0, tl - 1)?.reshape((b * (tl - 1), v))?;
    let labels = t.golden["labels"].narrow(1, 1, tl - 1)?.flatten_all()?;
    let (sum, n) = masked_cross_entropy(&shifted, &labels)?;
    let loss = (sum / n as f64)?;
    let want = t.golden["loss"].to_vec1::<f32>()?[0];
    let got = loss.to_scalar::<f32>()?;
    assert!(
        (got - want).abs() <= 1e-5,
        "{kind}: loss {got} vs transformers {want}"
    );

    let grads = loss.backward()?;
    for (name, var) in &t.vars {
        let g = grads
            .get(var.as_tensor())
            .with_context(|| format!("{kind}: parameter {name} received no gradient"))?;
        let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(norm > 0.0, "{kind}: gradient of {name} is all zero");
        let want = &t.golden[&format!("grad.{name}")];
        let d = max_abs_diff(g, want)?;
        assert!(
            d <= 1e-4,
            "{kind}: gradient of {name} differs from PyTorch by {d}"
        );
    }
    Ok(())
}

#[test]
fn tiny_llama_matches_transformers_logits_loss_and_gradients() -> Result<()> {
    check_golden("llama")
}

#[test]
fn tiny_qwen2_with_qkv_bias_matches_transformers() -> Result<()> {
    check_golden("qwen2")
}

#[test]
fn padded_batch_equals_single_rows() -> Result<()> {
    let t = load("llama")?;
    let a: Vec<u32> = vec![5, 17, 33, 2, 90, 41, 7];
    let b: Vec<u32> = vec![12, 64, 3];
    let batch = DecoderInput::left_padded(&[a.clone(), b.clone()], 0, &Device::Cpu)?;
    let hb = t
        .model
        .lm_logits(&t.model.forward_hidden(&batch, None, false)?)?; // (2, 7, V)
    for (i, row) in [a, b].iter().enumerate() {
        let single = DecoderInput::from_rows(std::slice::from_ref(row), &Device::Cpu)?;
        let hs = t
            .model
            .lm_logits(&t.model.forward_hidden(&single, None, false)?)?; // (1, n, V)
        let n = row.len();
        let from_batch = hb.get(i)?.narrow(0, 7 - n, n)?;
        let d = max_abs_diff(&from_batch, &hs.get(0)?)?;
        assert!(
            d <= 1e-5,
            "row {i}: padded batch differs from the row alone by {d}"
        );
    }
    Ok(())
}

#[test]
fn cached_decoding_equals_uncached() -> Result<()> {
    let t = load("qwen2")?;
    let prompt: Vec<Vec<u32>> = vec![vec![3, 9, 27, 81], vec![0, 0, 11, 12]];
    let mut input = DecoderInput::left_padded(&prompt, 0, &Device::Cpu)?;
    input.key_mask[1] = vec![0, 0, 1, 1];
    let mut cache = t.model.new_cache();
    let mut cached_logits = vec![t.model.last_logits(&input, Some(&mut cache))?];
    let mut seqs = prompt.clone();
    let mut mask = input.key_mask.clone();
    for step in 0..4u32 {
        let next: Vec<u32> = vec![40 + step, 50 + step];
        for (s, n) in seqs.iter_mut().zip(&next) {
            s.push(*n);
        }
        for m in mask.iter_mut() {
            m.push(1);
        }
        let step_input = DecoderInput {
            input_ids: Tensor::from_vec(next, (2, 1), &Device::Cpu)?,
            key_mask: mask.clone(),
            embeds: Vec::new(),
        };
        cached_logits.push(t.model.last_logits(&step_input, Some(&mut cache))?);
        // Uncached: the whole sequence again.
        let full = DecoderInput {
            input_ids: Tensor::from_vec(seqs.concat(), (2, seqs[0].len()), &Device::Cpu)?,
            key_mask: mask.clone(),
            embeds: Vec::new(),
        };
        let uncached = t.model.last_logits(&full, None)?;
        let d = max_abs_diff(cached_logits.last().context("step")?, &uncached)?;
        assert!(
            d <= 1e-5,
            "step {step}: cached differs from uncached by {d}"
        );
    }
    Ok(())
}
