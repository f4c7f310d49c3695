//! Input embeddings spliced into a decoder's input in place of some positions' tokens (what a
//! vision-language model does at its `<image>` placeholder), on the tiny random Llama.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_models::{weights, Architecture, DecoderInput, DecoderModel, EmbedSpan, LlamaConfig};

const EMBED: &str = "model.embed_tokens.weight";

/// The tiny Llama with every weight a `Var`, so gradients can be read per parameter.
fn load() -> Result<(DecoderModel, HashMap<String, Var>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_llama");
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let arch = Architecture::from_hf(&cfg.architectures[0]).context("architecture")?;
    let vars: HashMap<String, Var> = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?
        .iter()
        .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    let tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let model = arch.build(
        &cfg,
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
    )?;
    Ok((model, vars))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// Two left-padded rows; row 1's positions 3..6 (its tokens 1..4) come as embeddings.
fn inputs() -> Result<(DecoderInput, Vec<u32>)> {
    let rows = vec![vec![5u32, 17, 33, 2, 90, 41, 7], vec![12u32, 64, 3, 99, 8]];
    let input = DecoderInput::left_padded(&rows, 0, &Device::Cpu)?;
    Ok((input, rows[1][1..4].to_vec()))
}

#[test]
fn a_prompts_own_embeddings_give_the_ids_logits_and_receive_the_gradient() -> Result<()> {
    let (model, vars) = load()?;
    let table = vars.get(EMBED).context("embedding table")?;
    let (by_ids, span_ids) = inputs()?;
    let logits_ids = model.lm_logits(&model.forward_hidden(&by_ids, None, true)?)?; // (2, 7, V)

    let idx = Tensor::from_vec(span_ids.clone(), span_ids.len(), &Device::Cpu)?;
    let spliced = Var::from_tensor(&table.as_tensor().index_select(&idx, 0)?.detach())?; // (3, H)
    let mut placeholder_ids = by_ids.input_ids.to_vec2::<u32>()?;
    placeholder_ids[1][3..6].fill(127); // the ids under the span are not looked up
    let by_embeds = DecoderInput::new(
        Tensor::from_vec(placeholder_ids.concat(), (2, 7), &Device::Cpu)?,
        by_ids.key_mask.clone(),
    )
    .with_embeds(vec![EmbedSpan {
        row: 1,
        start: 3,
        embeds: spliced.as_tensor().clone(),
    }]);
    let logits_embeds = model.lm_logits(&model.forward_hidden(&by_embeds, None, true)?)?;
    let d = max_abs_diff(&logits_ids, &logits_embeds)?;
    assert_eq!(
        d, 0.0,
        "spliced embeddings of the same tokens change the logits by {d}"
    );

    // The gradient a spliced embedding receives is the one the embedding table's row receives
    // from that position when the ids are fed (the span's ids occur nowhere else).
    let grads_ids = logits_ids.sqr()?.sum_all()?.backward()?;
    let grads_embeds = logits_embeds.sqr()?.sum_all()?.backward()?;
    let g_span = grads_embeds
        .get(spliced.as_tensor())
        .context("the spliced embeddings received no gradient")?;
    let g_table = grads_ids.get(table.as_tensor()).context("table gradient")?;
    let want = g_table.index_select(&idx, 0)?;
    let norm = g_span.sqr()?.sum_all()?.to_scalar::<f32>()?;
    assert!(norm > 0.0, "the spliced embeddings' gradient is all zero");
    let d = max_abs_diff(g_span, &want)?;
    assert!(
        d <= 1e-6,
        "spliced embeddings' gradient differs from the table rows' by {d}"
    );
    // And the table no longer receives gradient at the placeholder id.
    let g_placeholder = grads_embeds
        .get(table.as_tensor())
        .context("table gradient with embeddings")?
        .get(127)?;
    assert_eq!(g_placeholder.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
    Ok(())
}

#[test]
fn embedding_spans_that_do_not_fit_are_refused_with_the_span_named() -> Result<()> {
    let (model, _) = load()?;
    let (input, _) = inputs()?;
    let e = |n: usize, h: usize| Tensor::zeros((n, h), DType::F32, &Device::Cpu);
    let cases = [
        (
            EmbedSpan {
                row: 2,
                start: 0,
                embeds: e(1, 32)?,
            },
            "row 2 of a batch of 2",
        ),
        (
            EmbedSpan {
                row: 0,
                start: 5,
                embeds: e(3, 32)?,
            },
            "positions 5..8 run past",
        ),
        (
            EmbedSpan {
                row: 0,
                start: 0,
                embeds: e(2, 16)?,
            },
            "expected (n, 32)",
        ),
    ];
    for (span, want) in cases {
        let bad = input.clone().with_embeds(vec![span]);
        let err = model
            .forward_hidden(&bad, None, false)
            .err()
            .context("a bad span was accepted")?
            .to_string();
        assert!(
            err.contains("embedding span 0") && err.contains(want),
            "{err}"
        );
    }
    let overlapping = input.with_embeds(vec![
        EmbedSpan {
            row: 1,
            start: 2,
            embeds: e(3, 32)?,
        },
        EmbedSpan {
            row: 1,
            start: 4,
            embeds: e(1, 32)?,
        },
    ]);
    let err = model
        .forward_hidden(&overlapping, None, false)
        .err()
        .context("overlapping spans were accepted")?
        .to_string();
    assert!(err.contains("overlap at position 4"), "{err}");
    Ok(())
}
