//! One sequence's sampling state: its own parameters and logits processors, seeded RNG,
//! incremental detokenizer, stop strings, history and logprobs. The sampling strategy
//! ([`crate::sample`]) keeps one per row; a server keeps one per request, so rows with
//! different settings share one running batch.

use crate::generator::{FinishReason, TokenLogprob, TopLogprob};
use crate::processors::{pick, pipeline, LogitsProcessor};
use crate::steps::log_sum_exp;
use crate::{IncrementalDecoder, Result, SamplingParams, StopChecker};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tasklm_text::TextTokenizer;

/// What accepting one token produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accepted {
    pub id: u32,
    /// Text that became final with this token (UTF-8 complete, not part of a stop string);
    /// may be empty.
    pub text: String,
    /// This token's logprob entry, when the row reports logprobs.
    pub logprob: Option<TokenLogprob>,
}

/// The sampling state of one sequence.
pub struct RowSampler {
    params: SamplingParams,
    processors: Vec<Box<dyn LogitsProcessor + Send + Sync>>,
    rng: StdRng,
    decoder: IncrementalDecoder,
    stop: StopChecker,
    history: Vec<u32>,
    generated: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    prompt_tokens: usize,
    limit: usize,
    finish: Option<FinishReason>,
}

impl RowSampler {
    /// A row that continues `prompt` under `params` (seeded with `params.seed`) and may
    /// generate at most `limit` tokens (`params.max_new_tokens` capped by the context left).
    pub fn new(params: SamplingParams, prompt: &[u32], limit: usize) -> Self {
        let limit = limit.min(params.max_new_tokens);
        Self {
            processors: pipeline(&params),
            rng: StdRng::seed_from_u64(params.seed),
            stop: StopChecker::new(&params.stop),
            params,
            decoder: IncrementalDecoder::new(),
            history: prompt.to_vec(),
            generated: Vec::new(),
            logprobs: Vec::new(),
            prompt_tokens: prompt.len(),
            limit,
            finish: (limit == 0).then_some(FinishReason::Length),
        }
    }

    pub fn wants_logprobs(&self) -> bool {
        self.params.logprobs || self.params.top_logprobs > 0
    }

    /// Picks the next token from this row's raw logits, records it, and sets the finish reason
    /// when the row ends (end of sequence, a stop string, or its length limit).
    pub fn accept(&mut self, raw: &[f32], tok: &TextTokenizer) -> Result<Accepted> {
        let mut l = raw.to_vec();
        for p in &self.processors {
            p.process(&mut l, &self.history);
        }
        let id = pick(&l, self.params.temperature, self.rng.random::<f32>());
        let logprob = self
            .wants_logprobs()
            .then(|| logprob_entry(raw, id, self.params.top_logprobs, tok));
        if let Some(e) = &logprob {
            self.logprobs.push(e.clone());
        }
        self.generated.push(id);
        self.history.push(id);
        let mut text = String::new();
        if tok.is_eos(id) && !self.params.ignore_eos {
            self.finish = Some(FinishReason::Stop);
        } else if let Some(delta) = self.decoder.push(tok, id)? {
            text = self.stop.push(&delta);
            if self.stop.stopped() {
                self.finish = Some(FinishReason::Stop);
            }
        }
        if self.finish.is_none() && self.generated.len() >= self.limit {
            self.finish = Some(FinishReason::Length);
        }
        if self.finish.is_some() && !self.stop.stopped() {
            text.push_str(&self.stop.flush());
        }
        Ok(Accepted { id, text, logprob })
    }

    /// Why the row ended, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The generated ids so far (a final end-of-sequence token included).
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    pub fn prompt_tokens(&self) -> usize {
        self.prompt_tokens
    }

    /// The final text so far (without a stop string and what followed it).
    pub fn text(&self) -> &str {
        self.stop.text()
    }

    /// Every generated token's logprob entry (empty unless the row reports logprobs).
    pub fn logprobs(&self) -> &[TokenLogprob] {
        &self.logprobs
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }
}

/// The logprob of `id` under raw logits, with the `top_n` most likely alternatives.
pub(crate) fn logprob_entry(
    raw: &[f32],
    id: u32,
    top_n: usize,
    tok: &TextTokenizer,
) -> TokenLogprob {
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
