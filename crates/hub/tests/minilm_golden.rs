//! Golden parity of the real all-minilm-l6-v2 encoder with transformers
//! (`scripts/golden/encoder.py`): the same token ids from our tokenizer for single and paired
//! inputs, last hidden states and a fixed 3-label head's loss within 1e-4 (f32).

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::PathBuf;
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_encoder, ModelSource};
use tasklm_models::{Bert, EncoderInput};
use tasklm_nn::ops::per_token_cross_entropy;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn minilm_matches_transformers_hidden_states_and_head_loss() -> Result<()> {
    let Some(dir) = catalog_model("all-minilm-l6-v2")? else {
        return Ok(());
    };
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/minilm_golden.safetensors");
    let g = candle_core::safetensors::load(fixture, &Device::Cpu)?;
    let ck = load_encoder(&ModelSource::HfDir(dir), &Device::Cpu)?;

    // Our tokenizer gives transformers' ids: [CLS] a [SEP] (b [SEP]).
    let ids = g["input_ids"].to_vec2::<i64>()?;
    let mask = g["attention_mask"].to_vec2::<i64>()?;
    let texts: [(&str, Option<&str>); 3] = [
        ("A man is playing a guitar on stage.", None),
        ("the film is a charming, funny and moving ride", None),
        (
            "Where is the Eiffel Tower?",
            Some("The Eiffel Tower is in Paris, France, on the Champ de Mars."),
        ),
    ];
    for (row, (a, b)) in texts.iter().enumerate() {
        let mut want: Vec<u32> = vec![ck.cls_id];
        want.extend(ck.tokenizer.encode(a, false)?);
        want.push(ck.sep_id);
        if let Some(b) = b {
            want.extend(ck.tokenizer.encode(b, false)?);
            want.push(ck.sep_id);
        }
        let n = mask[row].iter().filter(|&&m| m == 1).count();
        let golden: Vec<u32> = ids[row][..n].iter().map(|&i| i as u32).collect();
        assert_eq!(
            want, golden,
            "row {row}: token ids differ from transformers"
        );
    }

    let vb = VarBuilder::from_tensors(ck.tensors.clone(), DType::F32, &Device::Cpu);
    let bert = Bert::new(&ck.config, vb.pp("bert"))?;
    let input = EncoderInput {
        input_ids: g["input_ids"].to_dtype(DType::U32)?,
        token_type_ids: g["token_type_ids"].to_dtype(DType::U32)?,
        key_mask: mask
            .iter()
            .map(|r| r.iter().map(|&m| m as u8).collect())
            .collect(),
    };
    let hidden = bert.forward_t(&input, false)?; // (B, T, 384)
    for (b, row) in mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let d = max_abs_diff(
            &hidden.get(b)?.narrow(0, 0, n)?,
            &g["hidden"].get(b)?.narrow(0, 0, n)?,
        )?;
        assert!(
            d <= 1e-4,
            "row {b}: hidden states differ from transformers by {d}"
        );
    }
    let logits = bert
        .pool(&hidden)?
        .matmul(&g["head_weight"].t()?)?
        .broadcast_add(&g["head_bias"])?; // (B, 3)
    let loss = (per_token_cross_entropy(&logits, &g["labels"])?.sum_all()? / 3.0)?;
    let (got, want) = (loss.to_scalar::<f32>()?, g["loss"].to_vec1::<f32>()?[0]);
    assert!(
        (got - want).abs() <= 1e-4,
        "head loss {got} vs transformers {want}"
    );
    Ok(())
}
