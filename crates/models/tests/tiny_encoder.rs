//! Golden parity of the BERT encoder and the classification head on a tiny random
//! `BertForSequenceClassification` written by `scripts/golden/encoder.py` (hidden states,
//! logits, loss and every gradient against PyTorch), a padded batch against single rows, and
//! dropout that is real in training and off in evaluation.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_models::{weights, Bert, BertConfig, ClassifierHead, EncoderInput};
use tasklm_nn::ops::per_token_cross_entropy;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

struct Tiny {
    bert: Bert,
    head: ClassifierHead,
    vars: HashMap<String, Var>,
    golden: HashMap<String, Tensor>,
}

fn load() -> Result<Tiny> {
    let dir = fixture("tiny_bert");
    let cfg: BertConfig = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let vars: HashMap<String, Var> = tensors
        .iter()
        .filter(|(k, _)| !k.ends_with("position_ids"))
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let as_tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(as_tensors, DType::F32, &Device::Cpu);
    let bert = Bert::new(&cfg, vb.pp("bert"))?;
    let head = ClassifierHead::new(cfg.hidden_size, 3, cfg.head_dropout(), vb)?;
    let golden = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;
    Ok(Tiny {
        bert,
        head,
        vars,
        golden,
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// The golden batch as encoder input (rows already right-padded with id 0).
fn golden_input(g: &HashMap<String, Tensor>) -> Result<EncoderInput> {
    let mask: Vec<Vec<u8>> = g["attention_mask"]
        .to_vec2::<i64>()?
        .into_iter()
        .map(|r| r.into_iter().map(|m| m as u8).collect())
        .collect();
    Ok(EncoderInput {
        input_ids: g["input_ids"].to_dtype(DType::U32)?,
        token_type_ids: g["token_type_ids"].to_dtype(DType::U32)?,
        key_mask: mask,
    })
}

#[test]
fn tiny_bert_matches_transformers_hidden_states_loss_and_gradients() -> Result<()> {
    let t = load()?;
    let input = golden_input(&t.golden)?;
    let hidden = t.bert.forward_t(&input, false)?; // (B, T, H)
                                                   // Padding positions differ by design (transformers computes them too, but nothing reads
                                                   // them); compare real tokens only.
    for (b, row) in input.key_mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let d = max_abs_diff(
            &hidden.get(b)?.narrow(0, 0, n)?,
            &t.golden["hidden"].get(b)?.narrow(0, 0, n)?,
        )?;
        assert!(d <= 1e-4, "row {b}: hidden states differ by {d}");
    }
    let logits = t.head.forward_t(&t.bert.pool(&hidden)?, false)?; // (B, 3)
    let d = max_abs_diff(&logits, &t.golden["logits"])?;
    assert!(d <= 1e-5, "logits differ from transformers by {d}");
    let labels = &t.golden["labels"];
    let loss = (per_token_cross_entropy(&logits, labels)?.sum_all()? / 3.0)?;
    let (got, want) = (
        loss.to_scalar::<f32>()?,
        t.golden["loss"].to_vec1::<f32>()?[0],
    );
    assert!(
        (got - want).abs() <= 1e-5,
        "loss {got} vs transformers {want}"
    );
    let grads = loss.backward()?;
    for (name, var) in &t.vars {
        let g = grads
            .get(var.as_tensor())
            .with_context(|| format!("parameter {name} received no gradient"))?;
        let want = &t.golden[&format!("grad.{name}")];
        let d = max_abs_diff(g, want)?;
        assert!(d <= 1e-4, "gradient of {name} differs from PyTorch by {d}");
        // The padding row's embedding receives nothing from PyTorch either; every other
        // parameter must receive a non-zero gradient.
        let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(norm > 0.0, "gradient of {name} is all zero");
    }
    Ok(())
}

#[test]
fn padded_batch_equals_single_rows() -> Result<()> {
    let t = load()?;
    let a = (
        vec![2u32, 17, 33, 9, 40, 41, 7],
        vec![0u32, 0, 0, 0, 1, 1, 1],
    );
    let b = (vec![12u32, 60, 3], vec![0u32, 0, 0]);
    let batch = EncoderInput::right_padded(&[a.clone(), b.clone()], 0, &Device::Cpu)?;
    let hb = t.bert.forward_t(&batch, false)?; // (2, 7, H)
    let pb = t.bert.pool(&hb)?; // (2, H)
    for (i, row) in [a, b].iter().enumerate() {
        let single = EncoderInput::right_padded(std::slice::from_ref(row), 0, &Device::Cpu)?;
        let hs = t.bert.forward_t(&single, false)?; // (1, n, H)
        let n = row.0.len();
        let d = max_abs_diff(&hb.get(i)?.narrow(0, 0, n)?, &hs.get(0)?)?;
        assert!(d <= 1e-5, "row {i}: padded batch differs by {d}");
        let d = max_abs_diff(&pb.get(i)?, &t.bert.pool(&hs)?.get(0)?)?;
        assert!(d <= 1e-5, "row {i}: pooled vector differs by {d}");
    }
    Ok(())
}

#[test]
fn dropout_is_on_in_training_and_off_in_evaluation() -> Result<()> {
    let t = load()?;
    let input = golden_input(&t.golden)?;
    let eval_a = t.bert.forward_t(&input, false)?;
    let eval_b = t.bert.forward_t(&input, false)?;
    assert_eq!(max_abs_diff(&eval_a, &eval_b)?, 0.0);
    let train_a = t.bert.forward_t(&input, true)?;
    let train_b = t.bert.forward_t(&input, true)?;
    assert!(
        max_abs_diff(&train_a, &train_b)? > 1e-3,
        "dropout did nothing"
    );
    Ok(())
}
