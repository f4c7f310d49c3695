//! The step contract on the tiny T5s (`tests/fixtures/tiny_t5*`, from
//! `scripts/golden/seq2seq_t5.py`): beam search gives transformers' `generate(num_beams=...)`
//! token ids (without the decoder start token) and sequence scores (within 1e-4); sources of
//! different lengths searched together give each one's result alone; greedy sampling over the
//! cached steps equals argmax over full teacher-forced passes.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::PathBuf;
use tasklm_generate::{beam_search, BeamParams, RowInput, StepModel, T5Steps};
use tasklm_models::seq2seq::{T5Config, T5};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn load(name: &str) -> Result<T5> {
    let dir = fixture(name);
    let cfg: T5Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    Ok(T5::new(&cfg, vb)?)
}

fn ids(v: &Value) -> Result<Vec<u32>> {
    Ok(serde_json::from_value(v.clone())?)
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
    p.no_repeat_ngram_size = num("no_repeat_ngram_size").unwrap_or(0);
    p.num_return_sequences = num("num_return_sequences").unwrap_or(1);
    Ok(p)
}

#[test]
fn t5_beam_search_matches_transformers() -> Result<()> {
    for name in ["tiny_t5", "tiny_t5_gated"] {
        let model = load(name)?;
        let steps = T5Steps::new(&model);
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(name).join("beam.json"))?)?;
        let eos = [model.config().eos_token_id.context("eos")?];
        for case in golden["cases"].as_array().context("cases")? {
            let p = params(&case["settings"])?;
            let source = RowInput::from_ids(ids(&case["source"])?);
            let got = beam_search(&steps, &eos, &[source], &p)?;
            let want = case["hypotheses"].as_array().context("hypotheses")?;
            assert_eq!(got[0].len(), want.len());
            for (g, w) in got[0].iter().zip(want) {
                assert_eq!(g.token_ids, ids(&w["ids"])?, "{name} {}", case["settings"]);
                let score = w["score"].as_f64().context("score")? as f32;
                assert!(
                    (g.score - score).abs() < 1e-4,
                    "{name}: {} vs {score}",
                    g.score
                );
            }
        }
        // All sources in one batch: each gets its result alone.
        let cases: Vec<&Value> = golden["cases"]
            .as_array()
            .context("cases")?
            .iter()
            .step_by(2)
            .collect();
        let sources: Vec<RowInput> = cases
            .iter()
            .map(|c| ids(&c["source"]).map(RowInput::from_ids))
            .collect::<Result<_>>()?;
        let together = beam_search(&steps, &eos, &sources, &params(&cases[0]["settings"])?)?;
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(
                together[i][0].token_ids,
                ids(&c["hypotheses"][0]["ids"])?,
                "{name} {i}"
            );
        }
    }
    Ok(())
}

#[test]
fn cached_steps_equal_teacher_forced_passes() -> Result<()> {
    let model = load("tiny_t5")?;
    let steps = T5Steps::new(&model);
    let source = vec![43u32, 27, 10, 16, 39];
    let mut batch = steps.new_batch();
    let mut logits = steps.prefill(&mut batch, &[RowInput::from_ids(source.clone())])?;
    let mut generated: Vec<u32> = Vec::new();
    for _ in 0..6 {
        // The full pass whose decoder input is the start token and everything generated so
        // far (the labels' last entry only sets the length).
        let mut labels: Vec<i64> = generated.iter().map(|&t| t as i64).collect();
        labels.push(0);
        let n = labels.len();
        let full = model.forward_train(
            &Tensor::from_vec(source.clone(), (1, source.len()), &Device::Cpu)?,
            &[vec![1; source.len()]],
            &Tensor::from_vec(labels, (1, n), &Device::Cpu)?,
            false,
        )?;
        let want = full.get(0)?.get(n - 1)?;
        let d = (logits.get(0)? - &want)?
            .abs()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(
            d <= 1e-5,
            "after {} tokens: cached logits differ by {d}",
            n - 1
        );
        let next = logits.argmax(1)?.to_vec1::<u32>()?[0];
        generated.push(next);
        logits = steps.step(&mut batch, &[next])?;
    }
    Ok(())
}
