//! The sampling strategy over the step contract ([`crate::steps`]): one prefill of every
//! prompt, then one token per step for every unfinished row, with finished rows dropped from the
//! batch.

use crate::decoder_steps::DecoderSteps;
use crate::row_sampler::RowSampler;
use crate::steps::{RowBatch, RowInput, StepModel};
use crate::{Result, SamplingParams};
use serde::Serialize;
use tasklm_models::CausalLm;
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

/// Generates a continuation for each prompt (token ids) of a decoder. `on_text(row, delta)`
/// receives each row's text as soon as it is final (UTF-8 complete, not part of a stop string).
///
/// [`sample`] over [`DecoderSteps`], with prompts left-padded with the tokenizer's pad id.
pub fn generate(
    model: &dyn CausalLm,
    tok: &TextTokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Generation>> {
    let rows: Vec<RowInput> = prompts.iter().cloned().map(RowInput::from_ids).collect();
    sample(
        &DecoderSteps::new(model, tok.pad_id()),
        tok,
        &rows,
        params,
        on_text,
    )
}

/// The sampling strategy over any [`StepModel`]: prefills every prompt at once, then advances
/// the unfinished rows one token per step (each row seeded with `params.seed + row`), dropping
/// rows as they finish. `on_text(row, delta)` streams each row's final text.
pub fn sample<M: StepModel + ?Sized>(
    model: &M,
    tok: &TextTokenizer,
    prompts: &[RowInput],
    params: &SamplingParams,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Generation>> {
    params.validate()?;
    crate::steps::check_prompts(model, prompts)?;
    let mut rows: Vec<RowSampler> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let row_params = SamplingParams {
                seed: params.seed.wrapping_add(i as u64),
                ..params.clone()
            };
            let start = model.decoder_prompt(p);
            RowSampler::new(row_params, &start, model.max_new_tokens(p.ids.len()))
        })
        .collect();

    let mut timing = Timing::default();
    // Batch index -> row, for the rows still generating.
    let mut live: Vec<usize> = (0..prompts.len())
        .filter(|&i| !rows[i].is_finished())
        .collect();
    if !live.is_empty() {
        let inputs: Vec<RowInput> = live.iter().map(|&i| prompts[i].clone()).collect();
        let mut batch = model.new_batch();
        let started = std::time::Instant::now();
        let mut logits = model.prefill(&mut batch, &inputs)?; // (B, V)
        timing.prefill = started.elapsed();
        let decode_start = std::time::Instant::now();
        let never = model.never_generated();
        loop {
            let mut all = logits.to_vec2::<f32>()?;
            let mut next = Vec::with_capacity(live.len());
            for (bi, &ri) in live.iter().enumerate() {
                // transformers' `NoBadWordsLogitsProcessor` for single tokens.
                crate::beam_params::ban(never, &mut all[bi]);
                let a = rows[ri].accept(&all[bi], tok)?;
                if !a.text.is_empty() {
                    on_text(ri, &a.text);
                }
                next.push(a.id);
            }
            let keep: Vec<usize> = (0..live.len())
                .filter(|&bi| !rows[live[bi]].is_finished())
                .collect();
            if keep.is_empty() {
                break;
            }
            if keep.len() < live.len() {
                model.select(&mut batch, &keep)?;
                next = keep.iter().map(|&k| next[k]).collect();
                live = keep.iter().map(|&k| live[k]).collect();
            }
            debug_assert_eq!(batch.len(), live.len());
            logits = model.step(&mut batch, &next)?;
        }
        timing.decode = decode_start.elapsed();
    }
    Ok(rows
        .into_iter()
        .map(|r| Generation {
            text: r.text().to_string(),
            token_ids: r.generated().to_vec(),
            finish_reason: r.finish_reason().unwrap_or(FinishReason::Length),
            prompt_tokens: r.prompt_tokens(),
            logprobs: r.wants_logprobs().then(|| r.logprobs().to_vec()),
            timing,
        })
        .collect())
}
