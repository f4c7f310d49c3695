//! The sampling strategy over the step contract ([`crate::steps`]): one prefill of every
//! prompt, then one token per step for every unfinished row, with finished rows dropped from the
//! batch.

use crate::decoder_steps::DecoderSteps;
use crate::processors::{pick, pipeline, LogitsProcessor};
use crate::steps::{log_sum_exp, RowBatch, RowInput, StepModel};
use crate::{GenerateError, IncrementalDecoder, Result, SamplingParams, StopChecker};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

/// What one row's sampling needs besides its own state.
struct Sampler<'a> {
    tok: &'a TextTokenizer,
    params: &'a SamplingParams,
    processors: Vec<Box<dyn LogitsProcessor + Send + Sync>>,
    want_logprobs: bool,
}

impl Row {
    /// Picks this row's next token from its raw logits, records it, streams the text that became
    /// final to `on_text(index, ..)`, and sets `finish` when the row ends.
    fn accept(
        &mut self,
        raw: &[f32],
        s: &Sampler,
        index: usize,
        on_text: &mut dyn FnMut(usize, &str),
    ) -> Result<u32> {
        let mut l = raw.to_vec();
        for p in &s.processors {
            p.process(&mut l, &self.history);
        }
        let id = pick(&l, s.params.temperature, self.rng.random::<f32>());
        if s.want_logprobs {
            self.logprobs
                .push(logprob_entry(raw, id, s.params.top_logprobs, s.tok));
        }
        self.generated.push(id);
        self.history.push(id);
        if s.tok.is_eos(id) && !s.params.ignore_eos {
            self.finish = Some(FinishReason::Stop);
        } else if let Some(delta) = self.decoder.push(s.tok, id)? {
            let out = self.stop.push(&delta);
            if !out.is_empty() {
                on_text(index, &out);
            }
            if self.stop.stopped() {
                self.finish = Some(FinishReason::Stop);
            }
        }
        if self.finish.is_none() && self.generated.len() >= self.limit {
            self.finish = Some(FinishReason::Length);
        }
        if self.finish.is_some() && !self.stop.stopped() {
            let rest = self.stop.flush();
            if !rest.is_empty() {
                on_text(index, &rest);
            }
        }
        Ok(id)
    }
}

fn logprob_entry(raw: &[f32], id: u32, top_n: usize, tok: &TextTokenizer) -> TokenLogprob {
    let lse = log_sum_exp(raw);
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
    let max_prompt = model.max_prompt_tokens();
    for (i, p) in prompts.iter().enumerate() {
        if p.ids.is_empty() {
            return Err(GenerateError::EmptyPrompt(i));
        }
        if p.ids.len() > max_prompt {
            return Err(GenerateError::PromptTooLong {
                row: i,
                tokens: p.ids.len(),
                context: max_prompt,
            });
        }
    }
    let sampler = Sampler {
        tok,
        params,
        processors: pipeline(params),
        want_logprobs: params.logprobs || params.top_logprobs > 0,
    };
    let mut rows: Vec<Row> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let limit = params.max_new_tokens.min(model.max_new_tokens(p.ids.len()));
            Row {
                rng: StdRng::seed_from_u64(params.seed.wrapping_add(i as u64)),
                decoder: IncrementalDecoder::new(),
                stop: StopChecker::new(&params.stop),
                history: p.ids.clone(),
                generated: Vec::new(),
                logprobs: Vec::new(),
                limit,
                finish: (limit == 0).then_some(FinishReason::Length),
            }
        })
        .collect();

    let mut timing = Timing::default();
    // Batch index -> row, for the rows still generating.
    let mut live: Vec<usize> = (0..prompts.len())
        .filter(|&i| rows[i].finish.is_none())
        .collect();
    if !live.is_empty() {
        let inputs: Vec<RowInput> = live.iter().map(|&i| prompts[i].clone()).collect();
        let mut batch = model.new_batch();
        let started = std::time::Instant::now();
        let mut logits = model.prefill(&mut batch, &inputs)?; // (B, V)
        timing.prefill = started.elapsed();
        let decode_start = std::time::Instant::now();
        loop {
            let all = logits.to_vec2::<f32>()?;
            let mut next = Vec::with_capacity(live.len());
            for (bi, &ri) in live.iter().enumerate() {
                next.push(rows[ri].accept(&all[bi], &sampler, ri, on_text)?);
            }
            let keep: Vec<usize> = (0..live.len())
                .filter(|&bi| rows[live[bi]].finish.is_none())
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
        .zip(prompts)
        .map(|(r, p)| Generation {
            text: r.stop.text().to_string(),
            token_ids: r.generated,
            finish_reason: r.finish.unwrap_or(FinishReason::Length),
            prompt_tokens: p.ids.len(),
            logprobs: sampler.want_logprobs.then_some(r.logprobs),
            timing,
        })
        .collect())
}
