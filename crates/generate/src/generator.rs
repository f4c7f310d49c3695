//! The generation loop: batched prefill over left-padded prompts, then one token per step for
//! every unfinished row, with finished rows dropped from the batch and the KV cache.

use crate::processors::{pick, pipeline};
use crate::{GenerateError, IncrementalDecoder, Result, SamplingParams, StopChecker};
use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tasklm_models::{CausalLm, DecoderInput};
use tasklm_text::TextTokenizer;

/// Why a sequence ended, with OpenAI's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_new_tokens` or the context window.
    Length,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub id: u32,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// One generated token's logprob and the most likely alternatives (OpenAI's `logprobs.content`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub id: u32,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// The result for one prompt.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Generation {
    pub text: String,
    /// Generated ids, including a final end-of-sequence token.
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// Wall time of the batch's prefill and of its decoding steps.
    #[serde(skip)]
    pub timing: Timing,
}

/// Where a `generate` call spent its time (shared by all rows of the batch).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    pub prefill: std::time::Duration,
    pub decode: std::time::Duration,
}

struct Row {
    rng: StdRng,
    decoder: IncrementalDecoder,
    stop: StopChecker,
    history: Vec<u32>,
    generated: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    limit: usize,
    finish: Option<FinishReason>,
}

fn logprob_entry(raw: &[f32], id: u32, top_n: usize, tok: &TextTokenizer) -> TokenLogprob {
    let max = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + raw.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    let entry = |i: u32| TopLogprob {
        token: tok.decode(&[i], false).unwrap_or_default(),
        id: i,
        logprob: raw[i as usize] - lse,
        bytes: tok.token_bytes(i),
    };
    let mut order: Vec<u32> = (0..raw.len() as u32).collect();
    let n = top_n.min(order.len());
    if n > 0 {
        order.select_nth_unstable_by(n - 1, |&a, &b| raw[b as usize].total_cmp(&raw[a as usize]));
        order.truncate(n);
        order.sort_by(|&a, &b| raw[b as usize].total_cmp(&raw[a as usize]));
    }
    let me = entry(id);
    TokenLogprob {
        token: me.token,
        id,
        logprob: me.logprob,
        bytes: me.bytes,
        top_logprobs: order.iter().take(n).map(|&i| entry(i)).collect(),
    }
}

/// Generates a continuation for each prompt (token ids). `on_text(row, delta)` receives
/// each row's text as soon as it is final (UTF-8 complete, not part of a stop string).
pub fn generate(
    model: &dyn CausalLm,
    tok: &TextTokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Generation>> {
    params.validate()?;
    let ctx = model.max_context();
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(GenerateError::EmptyPrompt(i));
        }
        if p.len() > ctx {
            return Err(GenerateError::PromptTooLong {
                row: i,
                tokens: p.len(),
                context: ctx,
            });
        }
    }
    let processors = pipeline(params);
    let want_logprobs = params.logprobs || params.top_logprobs > 0;
    let mut rows: Vec<Row> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let limit = params.max_new_tokens.min(ctx - p.len());
            Row {
                rng: StdRng::seed_from_u64(params.seed.wrapping_add(i as u64)),
                decoder: IncrementalDecoder::new(),
                stop: StopChecker::new(&params.stop),
                history: p.clone(),
                generated: Vec::new(),
                logprobs: Vec::new(),
                limit,
                finish: (limit == 0).then_some(FinishReason::Length),
            }
        })
        .collect();

    let mut timing = Timing::default();
    // Batch index -> row, for the rows still generating.
    let mut batch: Vec<usize> = (0..prompts.len())
        .filter(|&i| rows[i].finish.is_none())
        .collect();
    if !batch.is_empty() {
        let live: Vec<Vec<u32>> = batch.iter().map(|&i| prompts[i].clone()).collect();
        let input = DecoderInput::left_padded(&live, tok.pad_id(), model.device())?;
        let mut mask = input.key_mask.clone();
        let mut cache = model.new_cache();
        let started = std::time::Instant::now();
        let mut logits = model.last_logits(&input, Some(&mut cache))?; // (B, V)
        timing.prefill = started.elapsed();
        let decode_start = std::time::Instant::now();
        loop {
            let all = logits.to_vec2::<f32>()?;
            let mut next = Vec::with_capacity(batch.len());
            for (bi, &ri) in batch.iter().enumerate() {
                let row = &mut rows[ri];
                let raw = &all[bi];
                let mut l = raw.clone();
                for p in &processors {
                    p.process(&mut l, &row.history);
                }
                let id = pick(&l, params.temperature, row.rng.random::<f32>());
                if want_logprobs {
                    row.logprobs
                        .push(logprob_entry(raw, id, params.top_logprobs, tok));
                }
                row.generated.push(id);
                row.history.push(id);
                if tok.is_eos(id) && !params.ignore_eos {
                    row.finish = Some(FinishReason::Stop);
                } else if let Some(delta) = row.decoder.push(tok, id)? {
                    let out = row.stop.push(&delta);
                    if !out.is_empty() {
                        on_text(ri, &out);
                    }
                    if row.stop.stopped() {
                        row.finish = Some(FinishReason::Stop);
                    }
                }
                if row.finish.is_none() && row.generated.len() >= row.limit {
                    row.finish = Some(FinishReason::Length);
                }
                if row.finish.is_some() && !row.stop.stopped() {
                    let rest = row.stop.flush();
                    if !rest.is_empty() {
                        on_text(ri, &rest);
                    }
                }
                next.push(id);
            }
            let keep: Vec<usize> = (0..batch.len())
                .filter(|&bi| rows[batch[bi]].finish.is_none())
                .collect();
            if keep.is_empty() {
                break;
            }
            if keep.len() < batch.len() {
                let idx = Tensor::from_vec(
                    keep.iter().map(|&k| k as u32).collect::<Vec<_>>(),
                    keep.len(),
                    model.device(),
                )?;
                cache.select_rows(&idx)?;
                mask = keep.iter().map(|&k| mask[k].clone()).collect();
                next = keep.iter().map(|&k| next[k]).collect();
                batch = keep.iter().map(|&k| batch[k]).collect();
            }
            mask.iter_mut().for_each(|m| m.push(1));
            let step = DecoderInput {
                input_ids: Tensor::from_vec(next, (batch.len(), 1), model.device())?,
                key_mask: mask.clone(),
            };
            logits = model.last_logits(&step, Some(&mut cache))?;
        }
        timing.decode = decode_start.elapsed();
    }
    Ok(rows
        .into_iter()
        .zip(prompts)
        .map(|(r, p)| Generation {
            text: r.stop.text().to_string(),
            token_ids: r.generated,
            finish_reason: r.finish.unwrap_or(FinishReason::Length),
            prompt_tokens: p.len(),
            logprobs: want_logprobs.then_some(r.logprobs),
            timing,
        })
        .collect())
}
