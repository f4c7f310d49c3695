//! The step contract: what a backbone serves so that any generation strategy (sampling today,
//! beam search and continuous batching next) can drive it one token at a time.
//!
//! A strategy owns a running batch ([`StepModel::Batch`]) whose rows are sequences. It can
//!
//! - **prefill** rows ([`StepModel::prefill`]): run their prompts (token ids, or embeddings at
//!   some positions) and append them to the batch, getting each new row's next-token logits.
//!   Prefilling into a batch that is already decoding is how a new request joins a running
//!   batch: it keeps its own positions, so rows of different lengths share one batch;
//! - **step** ([`StepModel::step`]): feed one token to every row and get every row's logits,
//!   hence per-step logprobs ([`log_softmax_rows`]);
//! - **select** rows ([`StepModel::select`]): keep a list of rows in a new order, which drops
//!   finished rows, reorders them, and forks a row into several copies (beam search: each beam
//!   continues from its parent's cache);
//! - **compact** ([`StepModel::compact`]): free state that no live row needs any more.
//!
//! The batch is opaque: a decoder keeps a KV cache and a key mask there, an encoder-decoder
//! adds each row's encoder output (its cross-attention keys and values). The strategy sees only
//! the row count, so the same strategy drives both.

use crate::Result;
use candle_core::{Device, Tensor};

/// A running batch of rows, opaque to strategies beyond its row count.
pub trait RowBatch {
    /// Number of live rows.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One row's prompt: token ids, with optional embeddings that replace the embeddings of
/// some positions (a vision model's image features at its `<image>` placeholder tokens).
#[derive(Clone, Debug, Default)]
pub struct RowInput {
    pub ids: Vec<u32>,
    /// `(start, embeds)`: (n, H) embeddings for prompt positions `start..start + n`; the ids
    /// there are placeholders (still seen by repetition penalties).
    pub embeds: Vec<(usize, Tensor)>,
}

impl RowInput {
    /// A prompt of token ids only.
    pub fn from_ids(ids: Vec<u32>) -> Self {
        Self {
            ids,
            embeds: Vec::new(),
        }
    }
}

impl From<Vec<u32>> for RowInput {
    fn from(ids: Vec<u32>) -> Self {
        Self::from_ids(ids)
    }
}

/// A backbone driven one token at a time over a running batch of rows.
///
/// Row indices are positions in the batch (0..len), in the order rows were prefilled and then
/// selected. Logits are f32 (rows, V) tensors on [`StepModel::device`]. After an error the
/// batch may be inconsistent: drop it.
pub trait StepModel {
    /// The per-row model state of a running batch (a decoder's KV cache and key mask; an
    /// encoder-decoder's encoder outputs too).
    type Batch: RowBatch;

    /// A batch with no rows.
    fn new_batch(&self) -> Self::Batch;

    /// Runs the prompts of `rows` and appends them after the batch's rows, in order. Returns
    /// (rows.len(), V) logits for each new row's first generated token. Rows may have any
    /// lengths, and may join a batch that is already decoding.
    fn prefill(&self, batch: &mut Self::Batch, rows: &[RowInput]) -> Result<Tensor>;

    /// Feeds `tokens[i]` to row `i` (one token per live row) and returns (B, V) logits for each
    /// row's next token.
    fn step(&self, batch: &mut Self::Batch, tokens: &[u32]) -> Result<Tensor>;

    /// Keeps the rows listed, in that order: rows not listed are dropped, and a row listed
    /// several times is forked into independent copies.
    fn select(&self, batch: &mut Self::Batch, rows: &[usize]) -> Result<()>;

    /// Frees state that no live row needs (a decoder's leading cache positions that are padding
    /// in every row). Later logits may differ from the uncompacted batch's in the last bits.
    fn compact(&self, _batch: &mut Self::Batch) -> Result<()> {
        Ok(())
    }

    /// The ids a row's generated tokens follow, as the sequence's start (for repetition
    /// penalties, n-gram bans and lengths): the prompt itself for a decoder, the decoder start
    /// token for an encoder-decoder (whose prompt is the encoder's source).
    fn decoder_prompt(&self, row: &RowInput) -> Vec<u32> {
        row.ids.clone()
    }

    /// Tokens that must never be generated (Marian's pad, which transformers bans through
    /// `bad_words_ids`): strategies set their scores to minus infinity, as transformers'
    /// `NoBadWordsLogitsProcessor` does.
    fn never_generated(&self) -> &[u32] {
        &[]
    }

    /// The longest prompt a row may have, in tokens.
    fn max_prompt_tokens(&self) -> usize;

    /// How many tokens a row whose prompt has `prompt_tokens` tokens may generate (a decoder's
    /// context window minus the prompt).
    fn max_new_tokens(&self, prompt_tokens: usize) -> usize;

    fn vocab_size(&self) -> usize;

    fn device(&self) -> &Device;
}

/// Every prompt has at least one token and fits the model's longest prompt.
pub(crate) fn check_prompts<M: StepModel + ?Sized>(model: &M, prompts: &[RowInput]) -> Result<()> {
    let max_prompt = model.max_prompt_tokens();
    for (i, p) in prompts.iter().enumerate() {
        if p.ids.is_empty() {
            return Err(crate::GenerateError::EmptyPrompt(i));
        }
        if p.ids.len() > max_prompt {
            return Err(crate::GenerateError::PromptTooLong {
                row: i,
                tokens: p.ids.len(),
                context: max_prompt,
            });
        }
    }
    Ok(())
}

/// `log(sum(exp(raw)))`, computed as the sampler's logprobs are.
pub(crate) fn log_sum_exp(raw: &[f32]) -> f32 {
    let max = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + raw.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

/// Per-row log-softmax of (B, V) step logits: the per-step logprobs of every vocabulary entry,
/// computed exactly as [`crate::generate`] reports them.
pub fn log_softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows = logits.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    Ok(rows
        .into_iter()
        .map(|raw| {
            let lse = log_sum_exp(&raw);
            raw.into_iter().map(|x| x - lse).collect()
        })
        .collect())
}
