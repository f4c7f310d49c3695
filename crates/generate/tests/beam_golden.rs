//! Beam search against transformers' `generate(num_beams=...)` on a tiny random Llama with
//! peaked logits (`tests/fixtures/tiny_beam`, fixture `beam_golden.json` from
//! `scripts/golden/beam_search.py`, which names the transformers version): the same token ids
//! for every returned hypothesis, and sequence scores within 1e-4 (f32 log-softmax sums over up
//! to 16 steps, computed in another order).

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::PathBuf;
use tasklm_generate::{beam_search, BeamParams, DecoderSteps, EarlyStopping, RowInput};
use tasklm_models::{weights, Architecture, DecoderModel, LlamaConfig};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn tiny_beam() -> Result<DecoderModel> {
    let dir = fixtures().join("tiny_beam");
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let arch = Architecture::from_hf(&cfg.architectures[0]).context("architecture")?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    Ok(arch.build(&cfg, vb)?)
}

fn params(s: &Value) -> Result<BeamParams> {
    let num = |k: &str| s.get(k).and_then(Value::as_u64).map(|x| x as usize);
    let mut p = BeamParams::new(
        num("num_beams").context("num_beams")?,
        num("max_new_tokens").context("max_new_tokens")?,
    );
    if let Some(lp) = s.get("length_penalty").and_then(Value::as_f64) {
        p.length_penalty = lp as f32;
    }
    p.early_stopping = match s.get("early_stopping") {
        Some(Value::Bool(true)) => EarlyStopping::Done,
        Some(Value::String(n)) if n == "never" => EarlyStopping::Never,
        _ => EarlyStopping::Heuristic,
    };
    p.no_repeat_ngram_size = num("no_repeat_ngram_size").unwrap_or(0);
    p.min_new_tokens = num("min_new_tokens").unwrap_or(0);
    p.num_return_sequences = num("num_return_sequences").unwrap_or(1);
    p.forced_eos_token_id = num("forced_eos_token_id").map(|t| t as u32);
    Ok(p)
}

fn ids(v: &Value) -> Result<Vec<u32>> {
    Ok(serde_json::from_value(v.clone())?)
}

#[test]
fn beam_search_matches_transformers() -> Result<()> {
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(
        fixtures().join("beam_golden.json"),
    )?)?;
    let model = tiny_beam()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let cases = golden["cases"].as_array().context("cases")?;
    assert!(cases.len() >= 18);
    for case in cases {
        let s = &case["settings"];
        let p = params(s)?;
        let eos = ids(&s["eos"])?;
        let prompt = ids(&case["prompt"])?;
        let got = beam_search(&steps, &eos, &[RowInput::from_ids(prompt.clone())], &p)?;
        let want = case["hypotheses"].as_array().context("hypotheses")?;
        assert_eq!(got[0].len(), want.len(), "{s} {prompt:?}");
        for (g, w) in got[0].iter().zip(want) {
            assert_eq!(g.token_ids, ids(&w["ids"])?, "{s} {prompt:?}");
            let score = w["score"].as_f64().context("score")? as f32;
            assert!(
                (g.score - score).abs() < 1e-4,
                "{s} {prompt:?}: {} vs {score}",
                g.score
            );
            assert_eq!(
                g.ended_with_eos,
                g.token_ids.last().is_some_and(|t| eos.contains(t))
            );
        }
    }
    Ok(())
}

#[test]
fn prompts_searched_together_match_each_alone() -> Result<()> {
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(
        fixtures().join("beam_golden.json"),
    )?)?;
    let model = tiny_beam()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    // The first setting's three prompts in one batch (rows of different lengths).
    let cases: Vec<&Value> = golden["cases"].as_array().context("cases")?[..3]
        .iter()
        .collect();
    let p = params(&cases[0]["settings"])?;
    let eos = ids(&cases[0]["settings"]["eos"])?;
    let prompts: Vec<RowInput> = cases
        .iter()
        .map(|c| ids(&c["prompt"]).map(RowInput::from_ids))
        .collect::<Result<_>>()?;
    let together = beam_search(&steps, &eos, &prompts, &p)?;
    for (i, c) in cases.iter().enumerate() {
        let want = ids(&c["hypotheses"][0]["ids"])?;
        assert_eq!(together[i][0].token_ids, want, "prompt {i}");
    }
    Ok(())
}

#[test]
fn bad_beam_options_are_errors() -> Result<()> {
    let model = tiny_beam()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let mut p = BeamParams::new(2, 4);
    p.num_return_sequences = 3;
    let e = beam_search(&steps, &[2], &[RowInput::from_ids(vec![5])], &p)
        .expect_err("3 of 2 beams")
        .to_string();
    assert!(e.contains("num_return_sequences"), "{e}");
    let e = beam_search(
        &steps,
        &[2],
        &[RowInput::from_ids(vec![])],
        &BeamParams::new(2, 4),
    )
    .expect_err("empty")
    .to_string();
    assert!(e.contains("empty"), "{e}");
    Ok(())
}
