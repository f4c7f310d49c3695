//! The step contract served by every decoder ([`CausalLm`]): a KV cache grown one position per
//! step, and a key mask whose real entries give each row its own positions.

use crate::steps::{RowBatch, RowInput, StepModel};
use crate::{GenerateError, Result};
use candle_core::{DType, Device, Tensor};
use tasklm_models::{CausalLm, DecoderInput, EmbedSpan};
use tasklm_nn::KvCache;

/// [`StepModel`] for any [`CausalLm`]. Prompts of different lengths are left-padded with
/// `pad_id` (masked out, so the id only fills the slot).
pub struct DecoderSteps<'a, M: CausalLm + ?Sized> {
    model: &'a M,
    pad_id: u32,
}

impl<'a, M: CausalLm + ?Sized> DecoderSteps<'a, M> {
    pub fn new(model: &'a M, pad_id: u32) -> Self {
        Self { model, pad_id }
    }

    pub fn model(&self) -> &'a M {
        self.model
    }
}

/// A decoder's running batch: one KV cache row and one key-mask row per sequence.
///
/// All rows share the cache's length; a shorter row is left-padded with zero keys that its mask
/// marks 0. A row's next position is its count of real keys, so it does not depend on the
/// other rows.
#[derive(Debug, Default)]
pub struct DecoderBatch {
    cache: KvCache,
    key_mask: Vec<Vec<u8>>,
}

impl DecoderBatch {
    /// Each row's mask over the cached positions (1 real, 0 padding).
    pub fn key_mask(&self) -> &[Vec<u8>] {
        &self.key_mask
    }

    /// Each row's next position: the number of real tokens it has seen.
    pub fn positions(&self) -> Vec<usize> {
        self.key_mask
            .iter()
            .map(|m| m.iter().filter(|&&x| x != 0).count())
            .collect()
    }

    /// Number of cached positions (padding included).
    pub fn cached_len(&self) -> usize {
        self.cache.seq_len()
    }
}

impl RowBatch for DecoderBatch {
    fn len(&self) -> usize {
        self.key_mask.len()
    }
}

fn left_pad_masks(masks: &mut [Vec<u8>], to: usize) {
    for m in masks.iter_mut() {
        if m.len() < to {
            let mut padded = vec![0u8; to - m.len()];
            padded.append(m);
            *m = padded;
        }
    }
}

impl<M: CausalLm + ?Sized> StepModel for DecoderSteps<'_, M> {
    type Batch = DecoderBatch;

    fn new_batch(&self) -> DecoderBatch {
        DecoderBatch {
            cache: self.model.new_cache(),
            key_mask: Vec::new(),
        }
    }

    fn prefill(&self, batch: &mut DecoderBatch, rows: &[RowInput]) -> Result<Tensor> {
        let ctx = self.model.max_context();
        for (i, r) in rows.iter().enumerate() {
            if r.ids.is_empty() {
                return Err(GenerateError::EmptyPrompt(i));
            }
            if r.ids.len() > ctx {
                return Err(GenerateError::PromptTooLong {
                    row: i,
                    tokens: r.ids.len(),
                    context: ctx,
                });
            }
        }
        let device = self.model.device();
        if rows.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.model.vocab_size()),
                DType::F32,
                device,
            )?);
        }
        let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
        let t = ids.iter().map(Vec::len).max().unwrap_or(0);
        let spans = rows
            .iter()
            .enumerate()
            .flat_map(|(row, r)| {
                let pad = t - r.ids.len();
                r.embeds.iter().map(move |(start, e)| EmbedSpan {
                    row,
                    start: pad + start,
                    embeds: e.clone(),
                })
            })
            .collect();
        let input = DecoderInput::left_padded(&ids, self.pad_id, device)?.with_embeds(spans);
        let mut cache = self.model.new_cache();
        let logits = self.model.last_logits(&input, Some(&mut cache))?; // (n, V)
        if batch.is_empty() {
            batch.cache = cache;
            batch.key_mask = input.key_mask;
        } else {
            // Join: both sides left-padded to the longer cache.
            let s = batch.cache.seq_len().max(cache.seq_len());
            batch.cache.append_rows(&cache)?;
            let mut new_masks = input.key_mask;
            left_pad_masks(&mut batch.key_mask, s);
            left_pad_masks(&mut new_masks, s);
            batch.key_mask.append(&mut new_masks);
        }
        Ok(logits)
    }

    fn step(&self, batch: &mut DecoderBatch, tokens: &[u32]) -> Result<Tensor> {
        let b = batch.len();
        if tokens.len() != b {
            return Err(GenerateError::RowCount {
                what: "step tokens",
                expected: b,
                got: tokens.len(),
            });
        }
        let device = self.model.device();
        if b == 0 {
            return Ok(Tensor::zeros(
                (0, self.model.vocab_size()),
                DType::F32,
                device,
            )?);
        }
        let mut mask = batch.key_mask.clone();
        mask.iter_mut().for_each(|m| m.push(1));
        let input = DecoderInput::new(Tensor::from_vec(tokens.to_vec(), (b, 1), device)?, mask);
        let logits = self.model.last_logits(&input, Some(&mut batch.cache))?; // (B, V)
        batch.key_mask = input.key_mask;
        Ok(logits)
    }

    fn select(&self, batch: &mut DecoderBatch, rows: &[usize]) -> Result<()> {
        let b = batch.len();
        if let Some(&row) = rows.iter().find(|&&r| r >= b) {
            return Err(GenerateError::RowOutOfRange { row, rows: b });
        }
        if rows.is_empty() {
            *batch = self.new_batch();
            return Ok(());
        }
        if rows.len() == b && rows.iter().enumerate().all(|(i, &r)| i == r) {
            return Ok(());
        }
        batch.cache.select(rows)?;
        batch.key_mask = rows.iter().map(|&r| batch.key_mask[r].clone()).collect();
        Ok(())
    }

    fn compact(&self, batch: &mut DecoderBatch) -> Result<()> {
        let lead = batch
            .key_mask
            .iter()
            .map(|m| m.iter().take_while(|&&x| x == 0).count())
            .min()
            .unwrap_or(0);
        if lead > 0 {
            batch.cache.drop_front(lead)?;
            batch.key_mask.iter_mut().for_each(|m| {
                m.drain(..lead);
            });
        }
        Ok(())
    }

    fn max_prompt_tokens(&self) -> usize {
        self.model.max_context()
    }

    fn max_new_tokens(&self, prompt_tokens: usize) -> usize {
        self.model.max_context().saturating_sub(prompt_tokens)
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn device(&self) -> &Device {
        self.model.device()
    }
}
