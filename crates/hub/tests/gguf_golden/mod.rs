//! A real catalog GGUF against transformers (fixtures `{prefix}_tokenizer.json`,
//! `{prefix}_logits.safetensors`, `{prefix}_golden.json` from `scripts/golden/decoder.py`):
//! tokenizer ids on ~3,000 real lines, and last-position logits in f32 (weights dequantized).

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use flate2::read::GzDecoder;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use tasklm_hub::testing::{catalog_model, shared_data};
use tasklm_hub::{load_checkpoint, ModelSource};
use tasklm_models::DecoderInput;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Reads the text a fixture item references, exactly as the golden script does.
pub fn read_item(data: &Path, file: &str, row: usize, field: Option<&str>) -> Result<String> {
    let path = data.join(file);
    let text = if file.ends_with(".gz") {
        let mut s = String::new();
        GzDecoder::new(std::fs::File::open(&path)?).read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(&path)?
    };
    let mut lines = text.split('\n');
    if file.ends_with(".gz") {
        return Ok(lines.nth(row).context("row")?.to_string());
    }
    if file.ends_with(".tsv") {
        return Ok(lines
            .nth(row + 1)
            .context("row")?
            .split('\t')
            .next()
            .unwrap_or("")
            .to_string());
    }
    let rec: Value = serde_json::from_str(lines.nth(row).context("row")?)?;
    Ok(rec[field.context("field")?]
        .as_str()
        .context("string field")?
        .to_string())
}

/// Token ids of catalog model `name` equal transformers' on the fixture texts (and decode
/// gives the text back).
pub fn check_tokenizer(name: &str, prefix: &str) -> Result<()> {
    let Some(gguf) = catalog_model(name)? else {
        return Ok(());
    };
    let ck = load_checkpoint(&ModelSource::Gguf(gguf), DType::F32, &Device::Cpu)?;
    let tok = ck.tokenizer;
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(fixture(&format!(
        "{prefix}_tokenizer.json"
    )))?)?;
    let mut checked = 0;
    let mut check = |text: &str, want: &Value| -> Result<()> {
        let want: Vec<u32> = serde_json::from_value(want.clone())?;
        let ids = tok.encode(text, true)?;
        assert_eq!(ids, want, "ids differ from transformers for {text:?}");
        assert_eq!(
            tok.decode(&ids, false)?,
            text,
            "decode does not give back {text:?}"
        );
        checked += 1;
        Ok(())
    };
    for e in fx["extra"].as_array().context("extra")? {
        check(e["text"].as_str().context("text")?, &e["ids"])?;
    }
    if let Some(data) = shared_data()? {
        for it in fx["items"].as_array().context("items")? {
            let text = read_item(
                &data,
                it["file"].as_str().context("file")?,
                it["row"].as_u64().context("row")? as usize,
                it["field"].as_str(),
            )?;
            check(&text, &it["ids"])?;
        }
        assert!(checked > 3000, "only {checked} texts checked");
    }
    Ok(())
}

/// Last-position logits of catalog model `name` (f32, dequantized) are within `tol` of
/// transformers' on the fixture prompts; returns the loaded decoder's config.
pub fn check_logits(
    name: &str,
    prefix: &str,
    tol: f32,
) -> Result<Option<tasklm_models::LlamaConfig>> {
    let Some(gguf) = catalog_model(name)? else {
        return Ok(None);
    };
    let dec =
        load_checkpoint(&ModelSource::Gguf(gguf), DType::F32, &Device::Cpu)?.into_decoder()?;
    let golden = candle_core::safetensors::load(
        fixture(&format!("{prefix}_logits.safetensors")),
        &Device::Cpu,
    )?;
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(fixture(&format!(
        "{prefix}_golden.json"
    )))?)?;
    for (i, p) in fx["prompts"]
        .as_array()
        .context("prompts")?
        .iter()
        .enumerate()
    {
        let text = p["text"].as_str().context("text")?;
        let ids = dec.tokenizer.encode(text, true)?;
        let want_ids: Vec<u32> = golden[&format!("ids.{i}")]
            .to_dtype(DType::U32)?
            .to_vec1()?;
        assert_eq!(ids, want_ids, "prompt {i} ids");
        let input = DecoderInput::from_rows(&[ids], &Device::Cpu)?;
        let logits = dec.model.last_logits(&input, None)?.squeeze(0)?;
        let d = (&logits - &golden[&format!("logits.{i}")])?
            .abs()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d <= tol, "{name} prompt {i}: max |logit diff| = {d}");
        eprintln!("{name} prompt {i}: max |logit diff| {d:.2e}");
    }
    Ok(Some(dec.config))
}
