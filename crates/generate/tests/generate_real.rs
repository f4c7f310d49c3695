//! The generation loop on the real SmolLM2-135M-Instruct, against transformers' greedy
//! continuation and top-5 logprobs (fixture from `scripts/golden/decoder.py`).

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use tasklm_generate::{generate, FinishReason, GenerateError, IncrementalDecoder, SamplingParams};
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_decoder, LoadedDecoder};

fn model() -> Result<Option<&'static LoadedDecoder>> {
    static M: OnceLock<Option<LoadedDecoder>> = OnceLock::new();
    if M.get().is_none() {
        let loaded = match catalog_model("smollm2-135m-instruct")? {
            Some(p) => Some(load_decoder(p.to_str().context("path")?, false)?),
            None => None,
        };
        let _ = M.set(loaded);
    }
    Ok(M.get().and_then(|m| m.as_ref()))
}

fn golden() -> Result<Value> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/smollm2_golden.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?)
}

fn run(
    m: &LoadedDecoder,
    prompts: &[&str],
    params: &SamplingParams,
) -> Result<Vec<tasklm_generate::Generation>> {
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| m.tokenizer.encode(p, true))
        .collect::<Result<_, _>>()?;
    Ok(generate(
        m.model.as_ref(),
        &m.tokenizer,
        &ids,
        params,
        &mut |_, _| {},
    )?)
}

#[test]
fn greedy_matches_transformers_ids_and_top5_logprobs() -> Result<()> {
    let Some(m) = model()? else { return Ok(()) };
    let g = golden()?;
    for p in g["prompts"].as_array().context("prompts")?.iter().take(2) {
        let text = p["text"].as_str().context("text")?;
        let steps = p["greedy"].as_array().context("greedy")?;
        let params = SamplingParams {
            top_logprobs: 5,
            ..SamplingParams::greedy(steps.len())
        };
        let out = &run(m, &[text], &params)?[0];
        let want_ids: Vec<u32> = steps
            .iter()
            .map(|s| s["id"].as_u64().unwrap_or(0) as u32)
            .collect();
        assert_eq!(out.token_ids, want_ids, "greedy ids for {text:?}");
        let lps = out.logprobs.as_ref().context("logprobs")?;
        for (i, (got, want)) in lps.iter().zip(steps).enumerate() {
            let want_lp = want["logprob"].as_f64().context("logprob")? as f32;
            assert!(
                (got.logprob - want_lp).abs() <= 1e-3,
                "step {i}: logprob {} vs {want_lp}",
                got.logprob
            );
            for (a, b) in got
                .top_logprobs
                .iter()
                .zip(want["top"].as_array().context("top")?)
            {
                assert_eq!(
                    a.id as u64,
                    b[0].as_u64().context("id")?,
                    "step {i}: top-5 ids differ"
                );
                let lp = b[1].as_f64().context("lp")? as f32;
                assert!(
                    (a.logprob - lp).abs() <= 1e-3,
                    "step {i}: top logprob {} vs {lp}",
                    a.logprob
                );
            }
        }
    }
    let first = &run(m, &["The capital of France is"], &SamplingParams::greedy(8))?[0];
    assert!(first.text.contains("Paris"), "{:?}", first.text);
    Ok(())
}

#[test]
fn same_seed_same_text_and_batch_equals_single() -> Result<()> {
    let Some(m) = model()? else { return Ok(()) };
    let sampled = SamplingParams {
        seed: 7,
        max_new_tokens: 12,
        ..SamplingParams::default()
    };
    let a = run(m, &["Once upon a time"], &sampled)?;
    let b = run(m, &["Once upon a time"], &sampled)?;
    assert_eq!(a[0].text, b[0].text);

    let greedy = SamplingParams::greedy(10);
    let prompts = [
        "The capital of France is",
        "def add(a, b):",
        "List three colors:",
    ];
    let batched = run(m, &prompts, &greedy)?;
    for (p, from_batch) in prompts.iter().zip(&batched) {
        let single = &run(m, &[p], &greedy)?[0];
        assert_eq!(
            from_batch.token_ids, single.token_ids,
            "batched differs from single for {p:?}"
        );
    }
    Ok(())
}

#[test]
fn stop_strings_and_length_limits() -> Result<()> {
    let Some(m) = model()? else { return Ok(()) };
    let params = SamplingParams {
        stop: vec![".".into()],
        ..SamplingParams::greedy(20)
    };
    let out = &run(m, &["The capital of France is"], &params)?[0];
    assert_eq!(out.text, " Paris");
    assert_eq!(out.finish_reason, FinishReason::Stop);
    let out = &run(m, &["The capital of France is"], &SamplingParams::greedy(3))?[0];
    assert_eq!(out.token_ids.len(), 3);
    assert_eq!(out.finish_reason, FinishReason::Length);

    let long = vec![504u32; 9000];
    let err = generate(
        m.model.as_ref(),
        &m.tokenizer,
        &[long],
        &params,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            GenerateError::PromptTooLong {
                tokens: 9000,
                context: 8192,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn incremental_detokenizing_never_splits_a_character() -> Result<()> {
    let Some(m) = model()? else { return Ok(()) };
    let text = "Emoji 👨‍👩‍👧 and 日本語 and café 🇫🇷!";
    let ids = m.tokenizer.encode(text, false)?;
    let mut dec = IncrementalDecoder::new();
    let mut out = String::new();
    let mut deltas = 0;
    for id in ids {
        if let Some(d) = dec.push(&m.tokenizer, id)? {
            assert!(!d.contains('\u{FFFD}'), "a delta split a character: {d:?}");
            out.push_str(&d);
            deltas += 1;
        }
    }
    assert_eq!(out, text);
    assert!(deltas > 5);
    Ok(())
}

#[test]
fn quantized_inference_agrees_with_f32() -> Result<()> {
    let Some(path) = catalog_model("smollm2-135m-instruct")? else {
        return Ok(());
    };
    let Some(f32_model) = model()? else {
        return Ok(());
    };
    let opts = tasklm_hub::LoadOptions {
        quantized: true,
        ..Default::default()
    };
    let q = tasklm_hub::load_decoder_with(path.to_str().context("path")?, opts, false)?;
    let params = SamplingParams {
        top_logprobs: 5,
        ..SamplingParams::greedy(6)
    };
    let a = &run(&q, &["The capital of France is"], &params)?[0];
    let b = &run(f32_model, &["The capital of France is"], &params)?[0];
    assert!(a.text.contains("Paris"), "{:?}", a.text);
    // Quantized matmuls (Q8 activations) move logprobs a little, not the ranking of the first token.
    let (la, lb) = (
        &a.logprobs.as_ref().context("lp")?[0],
        &b.logprobs.as_ref().context("lp")?[0],
    );
    assert_eq!(la.id, lb.id);
    assert!(
        (la.logprob - lb.logprob).abs() < 0.1,
        "{} vs {}",
        la.logprob,
        lb.logprob
    );
    Ok(())
}

#[test]
fn label_scores_equal_the_full_sequence_logprobs_and_rank_the_right_label_first() -> Result<()> {
    use tasklm_generate::{label_logprobs, label_probabilities, LabelNorm};
    let Some(m) = model()? else {
        return Ok(());
    };
    let prompt = m.tokenizer.encode("The capital of France is", true)?;
    let labels: Vec<Vec<u32>> = [" Paris", " London", " the city of Paris"]
        .iter()
        .map(|l| m.tokenizer.encode(l, false))
        .collect::<Result<_, _>>()?;
    assert!(labels[2].len() > 1, "a multi-token label");
    let scores = label_logprobs(m.model.as_ref(), &prompt, &labels, LabelNorm::Sum)?;
    // The same sums from one uncached forward pass over prompt + label.
    for (label, &score) in labels.iter().zip(&scores) {
        let full: Vec<u32> = prompt.iter().chain(label).copied().collect();
        let input =
            tasklm_models::DecoderInput::from_rows(std::slice::from_ref(&full), m.model.device())?;
        let h = m.model.forward_hidden(&input, None, false)?.squeeze(0)?;
        let logits = m.model.lm_logits(&h)?.to_dtype(candle_core::DType::F64)?;
        let lp = log_softmax_rows(&logits)?;
        let want: f64 = (0..label.len())
            .map(|k| lp[prompt.len() - 1 + k][label[k] as usize])
            .sum();
        assert!(
            (score - want).abs() < 1e-3,
            "cached {score} vs uncached {want}"
        );
    }
    let p = label_probabilities(&scores);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(p[0] > p[1], "{p:?}");
    let mean = label_logprobs(m.model.as_ref(), &prompt, &labels, LabelNorm::Mean)?;
    assert!((mean[2] - scores[2] / labels[2].len() as f64).abs() < 1e-9);
    Ok(())
}

/// Row-wise log-softmax of (T, V) logits, in f64.
fn log_softmax_rows(logits: &candle_core::Tensor) -> Result<Vec<Vec<f64>>> {
    let rows = logits.to_vec2::<f64>()?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let max = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = r.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
            r.into_iter().map(|x| x - lse).collect()
        })
        .collect())
}

#[test]
fn batched_label_scores_equal_one_prompt_at_a_time() -> Result<()> {
    use tasklm_generate::{label_logprobs, label_logprobs_batch, LabelNorm};
    let Some(m) = model()? else {
        return Ok(());
    };
    let prompts: Vec<Vec<u32>> = [
        "Review: a gem of a film. Sentiment:",
        "Review: long, dull and far too loud for its own good. Sentiment:",
        "Hi",
    ]
    .iter()
    .map(|p| m.tokenizer.encode(p, true))
    .collect::<Result<_, _>>()?;
    let labels: Vec<Vec<u32>> = [" positive", " negative", " not at all good"]
        .iter()
        .map(|l| m.tokenizer.encode(l, false))
        .collect::<Result<_, _>>()?;
    let pad = m.tokenizer.pad_id();
    let batch = label_logprobs_batch(m.model.as_ref(), &prompts, &labels, LabelNorm::Sum, pad)?;
    for (p, row) in prompts.iter().zip(&batch) {
        let single = label_logprobs(m.model.as_ref(), p, &labels, LabelNorm::Sum)?;
        for (a, b) in row.iter().zip(&single) {
            assert!((a - b).abs() < 1e-3, "batched {a} vs single {b}");
        }
    }
    Ok(())
}
