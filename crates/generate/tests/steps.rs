//! The step contract on the tiny random decoder (`tests/fixtures/tiny_llama`): rows added to a
//! running batch, forked, dropped and reordered behave as if each were decoded alone, and the
//! per-step logprobs are the full forward's log-softmax.
//!
//! Tolerances: 1e-5 absolute on logits and logprobs where the batch's padding changes the
//! number of keys a row's softmax and value sums run over (padded keys add exact zeros, but
//! the summation order can differ); 1e-6 where it does not (drop, reorder, fork).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use std::path::PathBuf;
use tasklm_generate::{
    log_softmax_rows, DecoderBatch, DecoderSteps, GenerateError, RowBatch, RowInput, StepModel,
};
use tasklm_models::{weights, Architecture, CausalLm, DecoderInput, DecoderModel, LlamaConfig};

fn tiny() -> Result<DecoderModel> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_llama");
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let arch = Architecture::from_hf(&cfg.architectures[0]).context("architecture")?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    Ok(arch.build(&cfg, vb)?)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

/// Greedy-decodes `prompt` alone for `n` steps: the prompt's logits, then each step's (1, V).
fn alone(
    steps: &DecoderSteps<dyn CausalLm + Send + Sync>,
    prompt: &[u32],
    n: usize,
) -> Result<(Vec<u32>, Vec<Tensor>)> {
    let mut batch = steps.new_batch();
    let mut logits = steps.prefill(&mut batch, &[RowInput::from_ids(prompt.to_vec())])?;
    let (mut tokens, mut all) = (Vec::new(), vec![logits.clone()]);
    for _ in 0..n {
        let next = argmax_rows(&logits)?;
        tokens.push(next[0]);
        logits = steps.step(&mut batch, &next)?;
        all.push(logits.clone());
    }
    Ok((tokens, all))
}

/// A row added to a batch that has been decoding for a while gets the tokens and logits it gets
/// alone, and the running rows are not disturbed; `first` is prefilled first, `late` joins after
/// three steps.
fn join_mid_decode(first: &[u32], late: &[u32]) -> Result<()> {
    let model = tiny()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let (first_tokens, first_logits) = alone(&steps, first, 8)?;
    let (late_tokens, late_logits) = alone(&steps, late, 5)?;

    let mut batch = steps.new_batch();
    let mut logits = steps.prefill(&mut batch, &[RowInput::from_ids(first.to_vec())])?;
    for s in 0..3 {
        let d = max_abs_diff(&logits, &first_logits[s])?;
        assert!(
            d <= 1e-5,
            "running row, step {s}: differs from alone by {d}"
        );
        logits = steps.step(&mut batch, &[first_tokens[s]])?;
    }
    let joined = steps.prefill(&mut batch, &[RowInput::from_ids(late.to_vec())])?;
    assert_eq!(batch.len(), 2);
    let d = max_abs_diff(&joined, &late_logits[0])?;
    assert!(d <= 1e-5, "joined row's prefill differs from alone by {d}");
    assert_eq!(
        batch.positions(),
        vec![first.len() + 3, late.len()],
        "each row keeps its own positions"
    );
    let mut late_logit = joined;
    for s in 0..5 {
        let d = max_abs_diff(&logits, &first_logits[3 + s])?;
        assert!(
            d <= 1e-5,
            "running row, step {}: differs from alone by {d}",
            3 + s
        );
        let got = argmax_rows(&late_logit)?[0];
        assert_eq!(got, late_tokens[s], "joined row, token {s}");
        let both = steps.step(&mut batch, &[first_tokens[3 + s], got])?; // (2, V)
        logits = both.narrow(0, 0, 1)?;
        late_logit = both.narrow(0, 1, 1)?;
        let d = max_abs_diff(&late_logit, &late_logits[s + 1])?;
        assert!(d <= 1e-5, "joined row, step {s}: differs from alone by {d}");
    }
    Ok(())
}

#[test]
fn a_row_added_mid_decode_decodes_as_it_does_alone() -> Result<()> {
    // The joining row is shorter than the batch's cache (it is left-padded) ...
    join_mid_decode(&[5, 17, 33, 2, 90, 41, 7], &[12, 64, 3])?;
    // ... and longer (the running row's cache is left-padded).
    join_mid_decode(&[12, 64], &[5, 17, 33, 2, 90, 41, 7, 99, 100, 8])
}

#[test]
fn a_forked_row_advances_like_two_independent_decodes() -> Result<()> {
    let model = tiny()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let (prompt, prefix) = (vec![9u32, 8, 7, 6, 5], vec![40u32, 41]);
    let mut batch = steps.new_batch();
    steps.prefill(
        &mut batch,
        &[
            RowInput::from_ids(vec![3, 3]),
            RowInput::from_ids(prompt.clone()),
        ],
    )?;
    steps.step(&mut batch, &[1, prefix[0]])?;
    steps.step(&mut batch, &[1, prefix[1]])?;
    // Beam search: row 1 becomes three beams, row 0 is dropped.
    steps.select(&mut batch, &[1, 1, 1])?;
    assert_eq!(batch.len(), 3);
    let branches = [[50u32, 51, 52], [60, 61, 62], [50, 70, 71]];
    let mut per_branch: Vec<Vec<Tensor>> = vec![Vec::new(); 3];
    for s in 0..3 {
        let toks: Vec<u32> = branches.iter().map(|b| b[s]).collect();
        let logits = steps.step(&mut batch, &toks)?;
        for (i, out) in per_branch.iter_mut().enumerate() {
            out.push(logits.narrow(0, i, 1)?);
        }
    }
    for (i, branch) in branches.iter().enumerate() {
        let mut single = steps.new_batch();
        let whole: Vec<u32> = prompt.iter().chain(&prefix).copied().collect();
        steps.prefill(&mut single, &[RowInput::from_ids(whole)])?;
        for (s, &tok) in branch.iter().enumerate() {
            let want = steps.step(&mut single, &[tok])?;
            let d = max_abs_diff(&per_branch[i][s], &want)?;
            assert!(
                d <= 1e-5,
                "beam {i}, step {s}: differs from its own decode by {d}"
            );
        }
    }
    Ok(())
}

fn three_rows(steps: &DecoderSteps<dyn CausalLm + Send + Sync>) -> Result<DecoderBatch> {
    let mut batch = steps.new_batch();
    steps.prefill(
        &mut batch,
        &[
            RowInput::from_ids(vec![5, 17, 33, 2, 90]),
            RowInput::from_ids(vec![12, 64]),
            RowInput::from_ids(vec![7, 7, 7, 8]),
        ],
    )?;
    steps.step(&mut batch, &[1, 2, 3])?;
    Ok(batch)
}

#[test]
fn dropping_or_reordering_rows_leaves_the_others_logits_unchanged() -> Result<()> {
    let model = tiny()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let mut all = three_rows(&steps)?;
    let reference = steps.step(&mut all, &[20, 21, 22])?; // (3, V)

    let mut dropped = three_rows(&steps)?;
    steps.select(&mut dropped, &[2, 0])?; // drop row 1, swap the others
    let got = steps.step(&mut dropped, &[22, 20])?;
    for (k, &r) in [2usize, 0].iter().enumerate() {
        let d = max_abs_diff(&got.narrow(0, k, 1)?, &reference.narrow(0, r, 1)?)?;
        assert!(d <= 1e-6, "row {r} moved to {k}: logits changed by {d}");
    }

    // Dropping the longest row leaves leading padding in every row; compacting frees it.
    let mut compacted = three_rows(&steps)?;
    steps.select(&mut compacted, &[1, 2])?;
    let before = compacted.cached_len();
    steps.compact(&mut compacted)?;
    assert_eq!(
        compacted.cached_len(),
        before - 1,
        "one column was padding in both rows"
    );
    assert_eq!(compacted.positions(), vec![3, 5]);
    let got = steps.step(&mut compacted, &[21, 22])?;
    let d = max_abs_diff(&got, &reference.narrow(0, 1, 2)?)?;
    assert!(d <= 1e-5, "compacted rows differ by {d}");

    let mut bad = three_rows(&steps)?;
    assert!(matches!(
        steps.select(&mut bad, &[0, 3]),
        Err(GenerateError::RowOutOfRange { row: 3, rows: 3 })
    ));
    assert!(matches!(
        steps.step(&mut bad, &[1, 2]),
        Err(GenerateError::RowCount {
            expected: 3,
            got: 2,
            ..
        })
    ));
    steps.select(&mut bad, &[])?;
    assert!(bad.is_empty());
    let again = steps.prefill(&mut bad, &[RowInput::from_ids(vec![12, 64])])?;
    assert_eq!(again.dims(), &[1, 128]);
    Ok(())
}

#[test]
fn per_step_logprobs_are_the_full_forwards_log_softmax() -> Result<()> {
    let model = tiny()?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let prompts = [vec![5u32, 17, 33, 2, 90, 41], vec![12u32, 64]];
    let mut batch = steps.new_batch();
    let rows: Vec<RowInput> = prompts.iter().cloned().map(RowInput::from_ids).collect();
    let mut logits = steps.prefill(&mut batch, &rows)?;
    let mut seqs = prompts.to_vec();
    let mut per_step: Vec<Vec<Vec<f32>>> = Vec::new(); // [step][row][vocab]
    for _ in 0..6 {
        per_step.push(log_softmax_rows(&logits)?);
        let next = argmax_rows(&logits)?;
        for (s, &t) in seqs.iter_mut().zip(&next) {
            s.push(t);
        }
        logits = steps.step(&mut batch, &next)?;
    }
    for (r, seq) in seqs.iter().enumerate() {
        // One uncached forward of the whole sequence: position p predicts token p + 1.
        let input = DecoderInput::from_rows(std::slice::from_ref(seq), &Device::Cpu)?;
        let full = model.lm_logits(&model.forward_hidden(&input, None, false)?)?; // (1, T, V)
        let full = candle_nn::ops::log_softmax(&full.squeeze(0)?, D::Minus1)?.to_vec2::<f32>()?;
        let p0 = prompts[r].len() - 1;
        for (s, step) in per_step.iter().enumerate() {
            let want = &full[p0 + s];
            let d = step[r]
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d <= 1e-5, "row {r}, step {s}: logprobs differ by {d}");
            let z: f32 = step[r].iter().map(|x| x.exp()).sum();
            assert!(
                (z - 1.0).abs() <= 1e-5,
                "row {r}, step {s}: probabilities sum to {z}"
            );
        }
    }
    Ok(())
}

#[test]
fn a_prompt_with_embeddings_at_some_positions_equals_its_ids() -> Result<()> {
    let model = tiny()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_llama");
    let table = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?
        .remove("model.embed_tokens.weight")
        .context("embedding table")?;
    let steps = DecoderSteps::new(model.as_ref(), 0);
    let prompt = vec![5u32, 17, 33, 2, 90];
    let ids = Tensor::from_vec(vec![33u32, 2], 2, &Device::Cpu)?;
    let spliced = RowInput {
        // Positions 2 and 3 arrive as embeddings, their ids replaced by a placeholder.
        ids: vec![5, 17, 127, 127, 90],
        embeds: vec![(2, table.index_select(&ids, 0)?)],
    };
    let mut a = steps.new_batch();
    let mut b = steps.new_batch();
    // Batched with a longer row, so the span's start moves with the left padding.
    let long = RowInput::from_ids(vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let la = steps.prefill(&mut a, &[long.clone(), RowInput::from_ids(prompt)])?;
    let lb = steps.prefill(&mut b, &[long, spliced])?;
    assert_eq!(
        max_abs_diff(&la, &lb)?,
        0.0,
        "embeddings of the ids give the ids' logits"
    );
    let sa = steps.step(&mut a, &[9, 9])?;
    let sb = steps.step(&mut b, &[9, 9])?;
    assert_eq!(max_abs_diff(&sa, &sb)?, 0.0, "and the same cache");
    Ok(())
}
