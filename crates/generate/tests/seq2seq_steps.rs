//! The step contract on the tiny encoder-decoders (`tests/fixtures/tiny_{t5,t5_gated,bart,marian}`,
//! from `scripts/golden/seq2seq_t5.py` and `seq2seq_bart.py`): beam search gives transformers'
//! `generate(num_beams=...)` token ids (without the decoder start token) and sequence scores
//! (within 1e-4), BART's forced BOS/EOS and Marian's never-generated pad included; sources of
//! different lengths searched together give each one's result alone; greedy sampling over the
//! cached steps equals argmax over full teacher-forced passes; a source longer than the
//! encoder's positions is refused.

mod common;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::{beam_params, fixture, ids};
use serde_json::Value;
use tasklm_generate::{
    beam_search, sample, BeamParams, GenerateError, RowInput, SamplingParams, Seq2SeqSteps,
    StepModel,
};
use tasklm_models::seq2seq::{EncoderDecoder, Seq2SeqModel};
use tasklm_models::{Model, ModelArchitecture};

fn load(name: &str) -> Result<Seq2SeqModel> {
    let dir = fixture(name);
    let path = dir.join("config.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let arch = ModelArchitecture::from_config(&json, &path)?;
    let cfg = arch.parse_config(&json, &path)?;
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    match arch.build(&cfg, vb, None)? {
        Model::Seq2Seq(m) => Ok(*m),
        other => bail!("{name}: not an encoder-decoder: {other:?}"),
    }
}

#[test]
fn beam_search_matches_transformers() -> Result<()> {
    for name in ["tiny_t5", "tiny_t5_gated", "tiny_bart", "tiny_marian"] {
        let model = load(name)?;
        let steps = Seq2SeqSteps::new(&model);
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(name).join("beam.json"))?)?;
        let eos = [model.eos_token_id().context("eos")?];
        for case in golden["cases"].as_array().context("cases")? {
            let p = beam_params(&case["settings"])?;
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
        let settings = golden["cases"][0]["settings"].clone();
        let cases: Vec<&Value> = golden["cases"]
            .as_array()
            .context("cases")?
            .iter()
            .filter(|c| c["settings"] == settings)
            .collect();
        assert!(
            cases.len() >= 3,
            "{name}: every source under the first settings"
        );
        let sources: Vec<RowInput> = cases
            .iter()
            .map(|c| ids(&c["source"]).map(RowInput::from_ids))
            .collect::<Result<_>>()?;
        let together = beam_search(&steps, &eos, &sources, &beam_params(&cases[0]["settings"])?)?;
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
    for name in ["tiny_t5", "tiny_bart", "tiny_marian"] {
        cached_steps_equal_teacher_forcing(name)?;
    }
    Ok(())
}

fn cached_steps_equal_teacher_forcing(name: &str) -> Result<()> {
    let model = load(name)?;
    let steps = Seq2SeqSteps::new(&model);
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name).join("beam.json"))?)?;
    let source = ids(&golden["cases"][0]["source"])?;
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
            "{name} after {} tokens: cached logits differ by {d}",
            n - 1
        );
        let next = logits.argmax(1)?.to_vec1::<u32>()?[0];
        generated.push(next);
        logits = steps.step(&mut batch, &[next])?;
    }
    Ok(())
}

#[test]
fn marian_never_generates_pad_and_long_sources_are_refused() -> Result<()> {
    let model = load("tiny_marian")?;
    let steps = Seq2SeqSteps::new(&model);
    assert_eq!(steps.never_generated(), &[42]);
    // Greedy sampling: pad (raised by final_logits_bias, which transformers' search without
    // `bad_words_ids` picks every step) never comes out.
    let source = RowInput::from_ids(vec![7, 21, 6, 10, 25, 35, 13, 23, 41, 34, 10]);
    let tok = tasklm_text::TextTokenizer::from_dir(&fixture("tiny_marian"))?;
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 8,
        ..SamplingParams::default()
    };
    let g = sample(&steps, &tok, &[source], &params, &mut |_, _| {})?;
    assert!(
        !g[0].token_ids.is_empty() && !g[0].token_ids.contains(&42),
        "{:?}",
        g[0].token_ids
    );
    // The encoder has 32 positions: a 33-token source is an error, not a panic.
    for name in ["tiny_bart", "tiny_marian"] {
        let model = load(name)?;
        let steps = Seq2SeqSteps::new(&model);
        assert_eq!(steps.max_prompt_tokens(), 32);
        assert_eq!(
            steps.max_new_tokens(5),
            31,
            "the start token takes a position"
        );
        let long = RowInput::from_ids(vec![5; 33]);
        let err = beam_search(&steps, &[0], &[long], &BeamParams::new(2, 4)).err();
        assert!(
            matches!(
                err,
                Some(GenerateError::PromptTooLong {
                    tokens: 33,
                    context: 32,
                    ..
                })
            ),
            "{name}: {err:?}"
        );
    }
    Ok(())
}
