//! Golden parity of the vision encoders on tiny random models written by
//! `scripts/golden/vision.py`: ViT (`ViTForImageClassification`, backbone under `vit.`; the
//! same backbone as a bare `ViTModel` with a pooler) and CLIP's vision tower
//! (`CLIPVisionModel`, quick_gelu, pre-layernorm). Every layer's hidden states, the last hidden
//! state, the pooled output, a classification head's logits and loss, and every parameter's
//! gradient against PyTorch; a batch of images against each image alone; real dropout.
//!
//! Tolerances: 1e-4 absolute on hidden states, pooled vectors and logits, 1e-5 on the loss,
//! 1e-4 on gradients relative to each gradient's largest entry (at least 1).

use anyhow::{Context, Result};
use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_models::{Model, ModelArchitecture, VisionModel};
use tasklm_nn::{ops, Linear};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

struct Tiny {
    model: VisionModel,
    vars: HashMap<String, Var>,
    golden: HashMap<String, Tensor>,
}

/// Builds the fixture through the registry over `Var`s, so gradients can be read per name.
fn load(name: &str) -> Result<Tiny> {
    let dir = fixture(name);
    let path = dir.join("config.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let arch = ModelArchitecture::from_config(&json, &path)?;
    let cfg = arch.parse_config(&json, &path)?;
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let vars: HashMap<String, Var> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(&t.to_dtype(DType::F32)?)?)))
        .collect::<Result<_>>()?;
    let as_tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(as_tensors, DType::F32, &Device::Cpu);
    let Model::Vision(model) = arch.build(&cfg, vb, None)? else {
        anyhow::bail!("{name}: not built as a vision model");
    };
    let golden = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;
    Ok(Tiny {
        model: *model,
        vars,
        golden,
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shapes {:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn close(name: &str, what: &str, got: &Tensor, want: &Tensor, tol: f32) -> Result<()> {
    let d = max_abs_diff(got, want).with_context(|| format!("{name}: {what}"))?;
    assert!(d <= tol, "{name}: {what} differs from transformers by {d}");
    Ok(())
}

/// Every gradient PyTorch has, here too, within 1e-4 of the largest entry.
fn check_grads(
    name: &str,
    grads: &candle_core::backprop::GradStore,
    vars: &HashMap<String, Var>,
    g: &HashMap<String, Tensor>,
) -> Result<()> {
    let expected: Vec<&String> = g.keys().filter(|k| k.starts_with("grad.")).collect();
    assert!(!expected.is_empty(), "{name}: no gradients in the fixture");
    for key in expected {
        let pname = &key["grad.".len()..];
        let var = vars.get(pname).with_context(|| {
            format!("{name}: PyTorch has a gradient for {pname}, no weight here")
        })?;
        let got = grads
            .get(var.as_tensor())
            .with_context(|| format!("{name}: {pname} received no gradient"))?;
        let want = &g[key];
        let d = max_abs_diff(got, want)?;
        let scale = want
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?
            .max(1.0);
        assert!(
            d <= 1e-4 * scale,
            "{name}: gradient of {pname} differs from PyTorch by {d} (largest entry {scale})"
        );
    }
    Ok(())
}

fn hidden_states_match(name: &str, t: &Tiny) -> Result<()> {
    let g = &t.golden;
    let out = t.model.forward_t(&g["pixel_values"], false)?;
    let n = g.keys().filter(|k| k.starts_with("hidden.")).count();
    assert_eq!(
        out.hidden_states.len(),
        n,
        "{name}: number of hidden states"
    );
    for (i, h) in out.hidden_states.iter().enumerate() {
        close(
            name,
            &format!("hidden state {i}"),
            h,
            &g[&format!("hidden.{i}")],
            1e-4,
        )?;
    }
    close(
        name,
        "last_hidden_state",
        &out.last_hidden_state,
        &g["last_hidden_state"],
        1e-4,
    )
}

fn loss_of(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (sum, n) = ops::masked_cross_entropy(logits, labels)?;
    Ok((sum / n as f64)?)
}

#[test]
fn tiny_vit_matches_transformers() -> Result<()> {
    let name = "tiny_vit";
    let t = load(name)?;
    hidden_states_match(name, &t)?;
    let g = &t.golden;
    let out = t.model.forward_t(&g["pixel_values"], false)?;
    assert!(
        out.pooler_output.is_none(),
        "a classification ViT has no pooler"
    );
    let w = t.vars["classifier.weight"].as_tensor().clone();
    let b = t.vars["classifier.bias"].as_tensor().clone();
    let logits = Linear::from_weights(w, Some(b)).forward_t(&out.pooled, false)?;
    close(name, "logits", &logits, &g["logits"], 1e-4)?;
    let loss = loss_of(&logits, &g["labels"])?;
    let (got, want) = (loss.to_scalar::<f32>()?, g["loss"].to_vec1::<f32>()?[0]);
    assert!((got - want).abs() <= 1e-5, "{name}: loss {got} vs {want}");
    check_grads(name, &loss.backward()?, &t.vars, g)
}

#[test]
fn bare_vit_model_with_pooler_matches_transformers() -> Result<()> {
    let name = "tiny_vit_model";
    let t = load(name)?;
    let g = &t.golden;
    let out = t.model.forward_t(&g["pixel_values"], false)?;
    close(
        name,
        "last_hidden_state",
        &out.last_hidden_state,
        &g["last_hidden_state"],
        1e-4,
    )?;
    let pooler = out
        .pooler_output
        .context("ViTModel's pooler was not loaded")?;
    close(name, "pooler_output", &pooler, &g["pooler_output"], 1e-4)?;
    // The same backbone as tiny_vit's, under `vit.` there: the same states.
    let cls = load("tiny_vit")?;
    let other = cls.model.forward_t(&g["pixel_values"], false)?;
    close(
        name,
        "backbone vs tiny_vit",
        &out.last_hidden_state,
        &other.last_hidden_state,
        0.0,
    )
}

#[test]
fn tiny_clip_vision_matches_transformers() -> Result<()> {
    let name = "tiny_clip_vision";
    let t = load(name)?;
    hidden_states_match(name, &t)?;
    let g = &t.golden;
    let out = t.model.forward_t(&g["pixel_values"], false)?;
    close(name, "pooled", &out.pooled, &g["pooler_output"], 1e-4)?;
    // The script's head on the pooled output, as Vars so its gradients are checked too.
    let mut vars = t.vars.clone();
    for k in ["head.weight", "head.bias"] {
        vars.insert(k.to_string(), Var::from_tensor(&g[k])?);
    }
    let head = Linear::from_weights(
        vars["head.weight"].as_tensor().clone(),
        Some(vars["head.bias"].as_tensor().clone()),
    );
    let logits = head.forward_t(&out.pooled, false)?;
    close(name, "logits", &logits, &g["logits"], 1e-4)?;
    let loss = loss_of(&logits, &g["labels"])?;
    let (got, want) = (loss.to_scalar::<f32>()?, g["loss"].to_vec1::<f32>()?[0]);
    assert!((got - want).abs() <= 1e-5, "{name}: loss {got} vs {want}");
    check_grads(name, &loss.backward()?, &vars, g)
}

#[test]
fn a_batch_of_images_equals_each_image_alone() -> Result<()> {
    for name in ["tiny_vit", "tiny_clip_vision"] {
        let t = load(name)?;
        let pixels = &t.golden["pixel_values"];
        let batch = t.model.forward_t(pixels, false)?;
        for b in 0..pixels.dim(0)? {
            let one = t.model.forward_t(&pixels.i(b..b + 1)?, false)?;
            for (i, (h1, hb)) in one
                .hidden_states
                .iter()
                .zip(&batch.hidden_states)
                .enumerate()
            {
                let d = max_abs_diff(h1, &hb.i(b..b + 1)?)?;
                assert!(
                    d <= 1e-5,
                    "{name} image {b}: hidden state {i} alone differs by {d}"
                );
            }
            let d = max_abs_diff(&one.pooled, &batch.pooled.i(b..b + 1)?)?;
            assert!(d <= 1e-5, "{name} image {b}: pooled alone differs by {d}");
        }
    }
    Ok(())
}

#[test]
fn dropout_is_real_in_training_only() -> Result<()> {
    // Both fixtures have attention dropout 0.1 (ViT also hidden dropout 0.1).
    for name in ["tiny_vit", "tiny_clip_vision"] {
        let t = load(name)?;
        let pixels = &t.golden["pixel_values"];
        let a = t.model.forward_t(pixels, true)?.last_hidden_state;
        let b = t.model.forward_t(pixels, true)?.last_hidden_state;
        assert!(
            max_abs_diff(&a, &b)? > 1e-3,
            "{name}: two training passes differ"
        );
        let c = t.model.forward_t(pixels, false)?.last_hidden_state;
        let d = t.model.forward_t(pixels, false)?.last_hidden_state;
        assert_eq!(max_abs_diff(&c, &d)?, 0.0);
    }
    Ok(())
}

#[test]
fn images_of_the_wrong_size_are_refused() -> Result<()> {
    let t = load("tiny_vit")?;
    let err = t
        .model
        .forward_t(
            &Tensor::zeros((1, 3, 48, 48), DType::F32, &Device::Cpu)?,
            false,
        )
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("(1, 3, 48, 48)") && e.contains("(3, 32, 32)")),
        "{err:?}"
    );
    Ok(())
}
