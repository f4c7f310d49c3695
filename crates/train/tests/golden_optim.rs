//! AdamW, clipping and schedules against PyTorch/transformers (`scripts/golden/optim.py`).

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use std::path::PathBuf;
use tasklm_train::{clip_grad_norm, AdamW, AdamWConfig, LrSchedule, ScheduleKind};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?)
}

#[test]
fn adamw_with_clipping_matches_torch_for_three_steps() -> Result<()> {
    let g = candle_core::safetensors::load(fixture("adamw.safetensors"), &Device::Cpu)?;
    let w = Var::from_tensor(&g["w.0"])?;
    let b = Var::from_tensor(&g["b.0"])?;
    let cfg = AdamWConfig {
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], cfg)?;
    for step in 1..=3 {
        // Build a GradStore holding the fixed gradients: d(sum(p * g))/dp = g.
        let loss = ((w.as_tensor() * &g[&format!("gw.{step}")])?.sum_all()?
            + (b.as_tensor() * &g[&format!("gb.{step}")])?.sum_all()?)?;
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(&mut grads, &[w.clone(), b.clone()], 1.0)?;
        let want_norm = g[&format!("norm.{step}")].to_vec1::<f64>()?[0];
        assert!(
            (norm - want_norm).abs() < 1e-12,
            "step {step}: norm {norm} vs {want_norm}"
        );
        opt.step(&grads, 0.01)?;
        let dw = max_diff(w.as_tensor(), &g[&format!("w.{step}")])?;
        let db = max_diff(b.as_tensor(), &g[&format!("b.{step}")])?;
        assert!(
            dw < 1e-12 && db < 1e-12,
            "step {step}: |w - torch| = {dw}, |b - torch| = {db}"
        );
    }
    assert_eq!(opt.steps(), 3);
    Ok(())
}

#[test]
fn optimizer_state_round_trips() -> Result<()> {
    let w = Var::from_tensor(&Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0]], &Device::Cpu)?)?;
    let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default())?;
    let grads = (w.as_tensor().sqr()?.sum_all()?).backward()?;
    opt.step(&grads, 0.1)?;
    let (state, step) = opt.state();
    let mut other = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default())?;
    other.load_state(&state, step)?;
    assert_eq!(other.steps(), 1);
    let (again, _) = other.state();
    assert_eq!(
        again["m.w"].to_vec2::<f64>()?,
        state["m.w"].to_vec2::<f64>()?
    );
    let missing = AdamW::new(vec![("x".into(), w)], AdamWConfig::default())?.load_state(&state, 1);
    assert!(missing.unwrap_err().to_string().contains("missing `m.x`"));
    Ok(())
}

#[test]
fn schedules_match_transformers() -> Result<()> {
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("schedules.json"))?)?;
    for (name, kind) in [
        ("linear", ScheduleKind::Linear),
        ("cosine", ScheduleKind::Cosine),
    ] {
        let s = LrSchedule {
            kind,
            peak_lr: 1.0,
            warmup_steps: 3,
            total_steps: 10,
        };
        for (step, want) in fx[name].as_array().into_iter().flatten().enumerate() {
            let want = want.as_f64().unwrap_or(f64::NAN);
            let got = s.lr(step as u64);
            assert!(
                (got - want).abs() < 1e-12,
                "{name} step {step}: {got} vs {want}"
            );
        }
    }
    Ok(())
}
