//! Shared by the golden tests (tiny_t5, tiny_bart; tiny_llava for the helpers): a fixture written by
//! `scripts/golden/seq2seq_*.py` built through the registry with every weight a `Var`, and the
//! checks each architecture must pass against PyTorch.
//!
//! Tolerances: 1e-4 absolute on hidden states and logits, 1e-5 on the loss, 1e-4 on gradients
//! relative to each gradient's largest entry (at least 1: weights drawn with std 0.5 give
//! gradients up to ~10); 1e-5 between a padded batch and single rows, and between cached and
//! teacher-forced decoding.

#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_models::seq2seq::{seq2seq_loss, EncoderDecoder, Seq2SeqModel};
use tasklm_models::{Model, ModelArchitecture};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

pub struct Tiny {
    pub model: Seq2SeqModel,
    pub vars: HashMap<String, Var>,
    pub golden: HashMap<String, Tensor>,
}

/// Builds the seq2seq model of `dir` through the registry over `tensors`.
pub fn build(dir: &Path, tensors: HashMap<String, Tensor>) -> Result<Seq2SeqModel> {
    let path = dir.join("config.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let arch = ModelArchitecture::from_config(&json, &path)?;
    let cfg = arch.parse_config(&json, &path)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    match arch.build(&cfg, vb, None)? {
        Model::Seq2Seq(m) => Ok(*m),
        other => bail!("{}: not an encoder-decoder: {other:?}", dir.display()),
    }
}

pub fn load(name: &str) -> Result<Tiny> {
    let dir = fixture(name);
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let vars: HashMap<String, Var> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(&t.to_dtype(DType::F32)?)?)))
        .collect::<Result<_>>()?;
    let as_tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let golden = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;
    Ok(Tiny {
        model: build(&dir, as_tensors)?,
        vars,
        golden,
    })
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// The largest absolute entry of `t`.
pub fn max_abs(t: &Tensor) -> Result<f32> {
    Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// `got` within 1e-4 of PyTorch's gradient `want`, relative to its largest entry (at least 1);
/// `what` names the parameter in the failure.
pub fn assert_gradient_close(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    let d = max_abs_diff(got, want)?;
    let scale = max_abs(want)?.max(1.0);
    assert!(
        d <= 1e-4 * scale,
        "{what}: gradient differs from PyTorch by {d} (largest entry {scale})"
    );
    Ok(())
}

pub fn key_mask(g: &HashMap<String, Tensor>) -> Result<Vec<Vec<u8>>> {
    Ok(g["attention_mask"]
        .to_vec2::<i64>()?
        .into_iter()
        .map(|r| r.into_iter().map(|m| m as u8).collect())
        .collect())
}

/// Encoder states, logits, loss and every gradient against the fixture's golden values.
pub fn check_golden(name: &str) -> Result<()> {
    let t = load(name)?;
    let g = &t.golden;
    let ids = g["input_ids"].to_dtype(DType::U32)?;
    let mask = key_mask(g)?;
    let enc = t.model.encode(&ids, &mask, false)?;
    for (b, row) in mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let d = max_abs_diff(
            &enc.i(b)?.narrow(0, 0, n)?,
            &g["encoder_hidden"].i(b)?.narrow(0, 0, n)?,
        )?;
        assert!(d <= 1e-4, "{name} row {b}: encoder states differ by {d}");
    }
    let labels = &g["labels"];
    let logits = t.model.forward_train(&ids, &mask, labels, false)?;
    let d = max_abs_diff(&logits, &g["logits"])?;
    assert!(d <= 1e-4, "{name}: logits differ from transformers by {d}");
    let loss = seq2seq_loss(&logits, labels)?;
    let (got, want) = (loss.to_scalar::<f32>()?, g["loss"].to_vec1::<f32>()?[0]);
    assert!((got - want).abs() <= 1e-5, "{name}: loss {got} vs {want}");
    let grads = loss.backward()?;
    let mut checked = 0;
    for (pname, var) in &t.vars {
        let Some(want) = g.get(&format!("grad.{pname}")) else {
            continue;
        };
        let got = grads
            .get(var.as_tensor())
            .with_context(|| format!("{name}: {pname} received no gradient"))?;
        assert_gradient_close(&format!("{name}: {pname}"), got, want)?;
        checked += 1;
    }
    let expected = g.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        checked, expected,
        "{name}: every PyTorch gradient has a parameter here"
    );
    Ok(())
}

/// Each row alone gives the padded batch's logits, and decoding one token at a time from the
/// cache gives the teacher-forced logits.
pub fn check_padding_and_cache(name: &str) -> Result<()> {
    let t = load(name)?;
    let g = &t.golden;
    let ids = g["input_ids"].to_dtype(DType::U32)?;
    let mask = key_mask(g)?;
    let labels = &g["labels"];
    let batch = t.model.forward_train(&ids, &mask, labels, false)?;
    for (b, row) in mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let one = t.model.forward_train(
            &ids.i(b..b + 1)?.narrow(1, 0, n)?,
            &[vec![1; n]],
            &labels.i(b..b + 1)?,
            false,
        )?;
        let d = max_abs_diff(&one, &batch.i(b..b + 1)?)?;
        assert!(
            d <= 1e-5,
            "{name} row {b} alone differs from the padded batch by {d}"
        );
    }
    let enc = t.model.encode(&ids, &mask, false)?;
    let dec_ids = t.model.shift_right(labels)?;
    let mut cache = t.model.start_cache(&enc, &mask)?;
    let steps = dec_ids.dim(1)?;
    for s in 0..steps {
        let h = t
            .model
            .decode(&dec_ids.narrow(1, s, 1)?, &mut cache, false)?;
        let step = t.model.logits(&h)?;
        let d = max_abs_diff(&step, &batch.narrow(1, s, 1)?)?;
        assert!(d <= 1e-5, "{name} step {s}: cached logits differ by {d}");
    }
    assert_eq!(cache.len(), steps);
    Ok(())
}

/// Dropout changes training passes and leaves inference deterministic.
pub fn check_dropout(name: &str) -> Result<()> {
    let t = load(name)?;
    let g = &t.golden;
    let ids = g["input_ids"].to_dtype(DType::U32)?;
    let mask = key_mask(g)?;
    let a = t.model.encode(&ids, &mask, true)?;
    let b = t.model.encode(&ids, &mask, true)?;
    assert!(
        max_abs_diff(&a, &b)? > 1e-3,
        "{name}: two training passes differ"
    );
    let c = t.model.encode(&ids, &mask, false)?;
    let d = t.model.encode(&ids, &mask, false)?;
    assert_eq!(max_abs_diff(&c, &d)?, 0.0);
    Ok(())
}
