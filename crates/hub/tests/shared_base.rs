//! Adapters over one base share its tensors while a `share_bases()` guard lives (the server
//! holds one while it loads), and each still gives its own outputs; without the guard every load
//! reads the base afresh.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use tasklm_hub::adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use tasklm_hub::{load_model, resolve, share_bases, Checkpoint, LoadOptions};
use tasklm_models::DecoderInput;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A second adapter: the fixture's config over the same base, its B matrices doubled.
fn doubled_adapter(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let src = fixture("lora_decoder");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(ADAPTER_CONFIG))?)?;
    cfg["base_model_name_or_path"] = fixture("tiny_decoder").to_string_lossy().into();
    std::fs::write(dir.join(ADAPTER_CONFIG), cfg.to_string())?;
    let tensors = candle_core::safetensors::load(src.join(ADAPTER_WEIGHTS), &Device::Cpu)?;
    let doubled = tensors
        .into_iter()
        .map(|(k, t)| {
            let t = if k.contains("lora_B") { (t * 2.0)? } else { t };
            Ok((k, t))
        })
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    candle_core::safetensors::save(&doubled, dir.join(ADAPTER_WEIGHTS))?;
    Ok(())
}

fn load(dir: &Path) -> Result<Checkpoint> {
    let source = resolve(dir.to_str().context("utf-8 path")?, false)?;
    Ok(load_model(&source, LoadOptions::default(), &Device::Cpu)?)
}

fn logits(ck: &Checkpoint) -> Result<Vec<f32>> {
    let m = ck.decoder().context("a decoder")?;
    let ids = Tensor::new(&[[1u32, 5, 9, 3]], &Device::Cpu)?;
    let input = DecoderInput::new(ids, vec![vec![1u8; 4]]);
    let h = m.forward_hidden(&input, None, false)?;
    Ok(m.lm_logits(&h)?.flatten_all()?.to_vec1::<f32>()?)
}

#[test]
fn adapters_over_one_base_share_its_tensors_while_the_guard_lives() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let second = tmp.path().join("doubled");
    doubled_adapter(&second)?;
    let base_key = "model.embed_tokens.weight";

    let (a, b) = {
        let _shared = share_bases();
        (load(&fixture("lora_decoder"))?, load(&second)?)
    };
    let id = |ck: &Checkpoint| ck.tensors.get(base_key).map(|t| t.id());
    assert!(id(&a).is_some());
    assert_eq!(id(&a), id(&b), "one base tensor for both adapters");
    let (la, lb) = (logits(&a)?, logits(&b)?);
    let diff = la
        .iter()
        .zip(&lb)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff > 1e-4,
        "each adapter keeps its own output (max difference {diff})"
    );

    // The same adapters loaded alone give the same outputs, over bases read afresh.
    let (a2, b2) = (load(&fixture("lora_decoder"))?, load(&second)?);
    assert_ne!(
        id(&a2),
        id(&b2),
        "without the guard each load reads its base"
    );
    for (x, y) in [(la, logits(&a2)?), (lb, logits(&b2)?)] {
        let d = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-6, "shared vs alone: {d}");
    }
    Ok(())
}
