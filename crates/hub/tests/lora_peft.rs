//! LoRA adapters in PEFT's format: adapters that PEFT wrote (scripts/golden/lora_peft.py) load
//! with PeftModel's logits (a decoder, BERT, BART), merging gives the adapted model's logits, and a bad
//! `adapter_config.json` is refused naming its file and field.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_hub::adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use tasklm_hub::{load_model, merge_adapter, read_adapter, resolve, LoadOptions, ModelSource};
use tasklm_models::{ClassifierHead, DecoderInput, EncoderInput, Model};

/// PEFT's logits and tasklm's agree to this (f32 on both sides, a few layers deep).
const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn golden() -> Result<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(
        fixture("lora_golden.safetensors"),
        &Device::Cpu,
    )?)
}

fn max_gap(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn ids() -> Result<Tensor> {
    Ok(golden()?["input_ids"].to_dtype(DType::U32)?)
}

fn decoder_logits(model: &Model, ids: &Tensor) -> Result<Tensor> {
    let Model::Decoder(m) = model else {
        anyhow::bail!("not a decoder");
    };
    let (b, t) = ids.dims2()?;
    let input = DecoderInput::new(ids.clone(), vec![vec![1; t]; b]);
    Ok(m.lm_logits(&m.forward_hidden(&input, None, false)?)?)
}

#[test]
fn a_peft_decoder_adapter_gives_peft_logits() -> Result<()> {
    // The adapter names its base `../tiny_decoder`, found beside the adapter directory.
    let dir = fixture("lora_decoder");
    let source = resolve(dir.to_str().context("path")?, false)?;
    let ModelSource::Adapter { base, .. } = &source else {
        anyhow::bail!("not resolved as an adapter: {source:?}");
    };
    assert!(base.path().ends_with("tiny_decoder"), "{base:?}");
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    let ids = ids()?;
    let logits = decoder_logits(&ck.model, &ids)?;
    let want = &golden()?["decoder_logits"];
    let gap = max_gap(&logits, want)?;
    assert!(gap < TOL, "tasklm vs PeftModel: {gap}");
    // The adapter does change the model: the base alone is far from PEFT's logits.
    let plain = load_model(base, LoadOptions::default(), &Device::Cpu)?;
    assert!(max_gap(&decoder_logits(&plain.model, &ids)?, want)? > 100.0 * TOL);
    Ok(())
}

#[test]
fn a_peft_seq_cls_adapter_on_an_encoder_gives_peft_logits() -> Result<()> {
    let source = resolve(fixture("lora_encoder").to_str().context("path")?, false)?;
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    let Model::Encoder(bert) = &ck.model else {
        anyhow::bail!("not an encoder");
    };
    // The classifier PEFT saved whole sits in the tensors under its own name.
    let vb = VarBuilder::from_tensors(ck.tensors.clone(), DType::F32, &Device::Cpu);
    let head = ClassifierHead::new(32, 3, 0.0, vb)?;
    let ids = ids()?;
    let (b, t) = ids.dims2()?;
    let input = EncoderInput {
        input_ids: ids.clone(),
        token_type_ids: ids.zeros_like()?,
        key_mask: vec![vec![1; t]; b],
    };
    let pooled = bert.pool(&bert.forward_t(&input, false)?)?;
    let logits = head.forward_t(&pooled, false)?;
    let gap = max_gap(&logits, &golden()?["encoder_logits"])?;
    assert!(gap < TOL, "tasklm vs PeftModel: {gap}");
    Ok(())
}

#[test]
fn a_peft_seq2seq_adapter_on_bart_gives_peft_logits() -> Result<()> {
    use tasklm_models::seq2seq::EncoderDecoder;
    let source = resolve(fixture("lora_seq2seq").to_str().context("path")?, false)?;
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    let g =
        candle_core::safetensors::load(fixture("lora_seq2seq_golden.safetensors"), &Device::Cpu)?;
    let logits_of = |model: &Model| -> Result<Tensor> {
        let Model::Seq2Seq(m) = model else {
            anyhow::bail!("not an encoder-decoder");
        };
        let ids = g["input_ids"].to_dtype(DType::U32)?;
        let (b, s) = ids.dims2()?;
        Ok(m.forward_train(&ids, &vec![vec![1; s]; b], &g["labels"], false)?)
    };
    let gap = max_gap(&logits_of(&ck.model)?, &g["logits"])?;
    assert!(gap < TOL, "tasklm vs PeftModel: {gap}");
    // Without the adapter the logits are far from PEFT's.
    let plain = load_model(
        &ModelSource::HfDir(fixture("tiny_bart")),
        LoadOptions::default(),
        &Device::Cpu,
    )?;
    assert!(max_gap(&logits_of(&plain.model)?, &g["logits"])? > 100.0 * TOL);
    // `tasklm merge`: a plain directory with the adapter folded in, its generation defaults
    // carried over.
    let out = std::env::temp_dir().join(format!("tasklm-merge-s2s-{}", std::process::id()));
    tasklm_hub::write_merged(&source, &out)?;
    assert!(out.join("generation_config.json").is_file());
    let merged = load_model(
        &ModelSource::HfDir(out.clone()),
        LoadOptions::default(),
        &Device::Cpu,
    )?;
    let gap = max_gap(&logits_of(&merged.model)?, &g["logits"])?;
    assert!(gap < TOL, "merged vs PeftModel: {gap}");
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

#[test]
fn merging_folds_the_adapter_into_the_weights() -> Result<()> {
    let dir = fixture("lora_decoder");
    let base = ModelSource::HfDir(fixture("tiny_decoder"));
    let mut ck = load_model(&base, LoadOptions::default(), &Device::Cpu)?;
    let adapter = read_adapter(&dir, &Device::Cpu)?;
    merge_adapter(&mut ck.tensors, &adapter, &dir.join(ADAPTER_WEIGHTS))?;
    assert!(!ck.tensors.keys().any(|k| k.contains("lora")));
    let vb = VarBuilder::from_tensors(ck.tensors.clone(), DType::F32, &Device::Cpu);
    let merged = ck.architecture.build(&ck.config, vb, None)?;
    let logits = decoder_logits(&merged, &ids()?)?;
    let gap = max_gap(&logits, &golden()?["decoder_logits"])?;
    assert!(gap < TOL, "merged vs PeftModel: {gap}");
    Ok(())
}

/// A copy of the decoder adapter with `edit` applied to its config, in the temp dir.
fn edited(tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tasklm-lora-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let src = fixture("lora_decoder");
    std::fs::copy(src.join(ADAPTER_WEIGHTS), dir.join(ADAPTER_WEIGHTS))?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(ADAPTER_CONFIG))?)?;
    cfg["base_model_name_or_path"] = fixture("tiny_decoder").to_string_lossy().into();
    edit(&mut cfg);
    std::fs::write(dir.join(ADAPTER_CONFIG), cfg.to_string())?;
    Ok(dir)
}

fn load_err(dir: &std::path::Path) -> String {
    let r = resolve(dir.to_str().unwrap_or(""), false)
        .and_then(|s| load_model(&s, LoadOptions::default(), &Device::Cpu));
    r.err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn a_bad_adapter_config_names_its_file_and_field() -> Result<()> {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 5] = [
        (
            "rank0",
            |c| c["r"] = 0.into(),
            "`r`: expected a rank of at least 1, found 0",
        ),
        (
            "ia3",
            |c| c["peft_type"] = "IA3".into(),
            "`peft_type`: IA3, tasklm reads LORA",
        ),
        (
            "dora",
            |c| c["use_dora"] = true.into(),
            "`use_dora`: true (DoRA) is not supported",
        ),
        (
            "alpha",
            |c| c["lora_alpha"] = "x".into(),
            "`lora_alpha`: expected a number",
        ),
        (
            "nobase",
            |c| c["base_model_name_or_path"] = "/no/such/base".into(),
            "`base_model_name_or_path`",
        ),
    ];
    for (tag, edit, want) in cases {
        let dir = edited(tag, edit)?;
        let err = load_err(&dir);
        assert!(
            err.contains(ADAPTER_CONFIG) && err.contains(want),
            "{tag}: {err}"
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

#[test]
fn an_adapter_for_another_model_names_the_missing_layer() -> Result<()> {
    let dir = edited("other", |_| {})?;
    let mut tensors = candle_core::safetensors::load(dir.join(ADAPTER_WEIGHTS), &Device::Cpu)?;
    let a = tensors
        .remove("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        .context("fixture key")?;
    tensors.insert(
        "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight".into(),
        a,
    );
    let b = tensors
        .remove("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
        .context("fixture key")?;
    tensors.insert(
        "base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight".into(),
        b,
    );
    candle_core::safetensors::save(&tensors, dir.join(ADAPTER_WEIGHTS))?;
    let err = load_err(&dir);
    assert!(
        err.contains(ADAPTER_WEIGHTS)
            && err.contains(
                "adapts `model.layers.9.self_attn.q_proj`, which the base model does not have"
            ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
