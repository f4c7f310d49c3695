//! Label scoring: a decoder classifies by the log-probability of each allowed label
//! continuation after the prompt, never by generating free text. The prompt runs once; each
//! label continues from a copy of its KV cache (copies share the cached tensors).

use crate::{GenerateError, Result};
use candle_core::{DType, Tensor, D};
use tasklm_models::{CausalLm, DecoderInput};

/// How label log-probabilities combine over a label's tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabelNorm {
    /// Sum over the label's tokens (the label's probability).
    #[default]
    Sum,
    /// Mean over the label's tokens (length-normalised).
    Mean,
}

/// Log-probability of each label's tokens following `prompt` (summed or averaged).
pub fn label_logprobs(
    model: &dyn CausalLm,
    prompt: &[u32],
    labels: &[Vec<u32>],
    norm: LabelNorm,
) -> Result<Vec<f64>> {
    if prompt.is_empty() {
        return Err(GenerateError::EmptyPrompt(0));
    }
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(GenerateError::InvalidParam(format!(
            "label {i} has no tokens"
        )));
    }
    let longest = labels.iter().map(Vec::len).max().unwrap_or(0);
    let ctx = model.max_context();
    if prompt.len() + longest > ctx {
        return Err(GenerateError::PromptTooLong {
            row: 0,
            tokens: prompt.len() + longest,
            context: ctx,
        });
    }
    let input = DecoderInput::from_rows(&[prompt.to_vec()], model.device())?;
    label_logprobs_input(model, input, labels, norm)
}

/// [`label_logprobs`] after a prepared one-row prompt `input`, which may carry spliced
/// embeddings (a vision-language model's image features).
pub fn label_logprobs_input(
    model: &dyn CausalLm,
    input: DecoderInput,
    labels: &[Vec<u32>],
    norm: LabelNorm,
) -> Result<Vec<f64>> {
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(GenerateError::InvalidParam(format!(
            "label {i} has no tokens"
        )));
    }
    let prompt_len = input.input_ids.dim(1)?;
    if prompt_len == 0 {
        return Err(GenerateError::EmptyPrompt(0));
    }
    let device = model.device();
    let mut cache = model.new_cache();
    let first = log_softmax(&model.last_logits(&input, Some(&mut cache))?.squeeze(0)?)?; // (V)
    let first = first.to_vec1::<f64>()?;
    let mut out = Vec::with_capacity(labels.len());
    for label in labels {
        let mut total = first[label[0] as usize];
        if label.len() > 1 {
            // Teacher-force the label's tokens but the last; each position scores the next.
            let mut c = cache.try_clone()?;
            let rest = &label[..label.len() - 1];
            let key_mask = vec![vec![1u8; prompt_len + rest.len()]];
            let step = DecoderInput::new(
                Tensor::from_vec(rest.to_vec(), (1, rest.len()), device)?,
                key_mask,
            );
            let h = model
                .forward_hidden(&step, Some(&mut c), false)?
                .squeeze(0)?; // (n-1, H)
            let lp = log_softmax(&model.lm_logits(&h)?)?.to_vec2::<f64>()?; // (n-1, V)
            total += label[1..]
                .iter()
                .zip(&lp)
                .map(|(&t, row)| row[t as usize])
                .sum::<f64>();
        }
        out.push(match norm {
            LabelNorm::Sum => total,
            LabelNorm::Mean => total / label.len() as f64,
        });
    }
    Ok(out)
}

/// [`label_logprobs`] for several prompts at once: one left-padded prefill, then each label's
/// tokens for all rows together. Row `i` of the result holds prompt `i`'s label scores.
pub fn label_logprobs_batch(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    labels: &[Vec<u32>],
    norm: LabelNorm,
    pad_id: u32,
) -> Result<Vec<Vec<f64>>> {
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(GenerateError::EmptyPrompt(i));
    }
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(GenerateError::InvalidParam(format!(
            "label {i} has no tokens"
        )));
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let longest = labels.iter().map(Vec::len).max().unwrap_or(0);
    let ctx = model.max_context();
    if let Some((row, p)) = prompts
        .iter()
        .enumerate()
        .find(|(_, p)| p.len() + longest > ctx)
    {
        return Err(GenerateError::PromptTooLong {
            row,
            tokens: p.len() + longest,
            context: ctx,
        });
    }
    let device = model.device();
    let b = prompts.len();
    let input = DecoderInput::left_padded(prompts, pad_id, device)?;
    let mut cache = model.new_cache();
    let first = log_softmax(&model.last_logits(&input, Some(&mut cache))?)?.to_vec2::<f64>()?; // (B, V)
    let mut out = vec![Vec::with_capacity(labels.len()); b];
    for label in labels {
        let mut totals: Vec<f64> = first.iter().map(|row| row[label[0] as usize]).collect();
        if label.len() > 1 {
            let rest = &label[..label.len() - 1];
            let mut c = cache.try_clone()?;
            let key_mask: Vec<Vec<u8>> = input
                .key_mask
                .iter()
                .map(|m| {
                    m.iter()
                        .copied()
                        .chain(std::iter::repeat_n(1, rest.len()))
                        .collect()
                })
                .collect();
            let ids: Vec<u32> = (0..b).flat_map(|_| rest.iter().copied()).collect();
            let step = DecoderInput::new(Tensor::from_vec(ids, (b, rest.len()), device)?, key_mask);
            let h = model.forward_hidden(&step, Some(&mut c), false)?; // (B, n-1, H)
            let lp = log_softmax(&model.lm_logits(&h)?)?.to_vec3::<f64>()?; // (B, n-1, V)
            for (total, rows) in totals.iter_mut().zip(&lp) {
                *total += label[1..]
                    .iter()
                    .zip(rows)
                    .map(|(&t, row)| row[t as usize])
                    .sum::<f64>();
            }
        }
        for (o, t) in out.iter_mut().zip(totals) {
            o.push(match norm {
                LabelNorm::Sum => t,
                LabelNorm::Mean => t / label.len() as f64,
            });
        }
    }
    Ok(out)
}

fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let x = logits.to_dtype(DType::F64)?;
    let max = x.max_keepdim(D::Minus1)?;
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Softmax over label scores: the probability of each label among the allowed ones.
pub fn label_probabilities(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let z: f64 = exps.iter().sum();
    exps.iter().map(|e| e / z).collect()
}
