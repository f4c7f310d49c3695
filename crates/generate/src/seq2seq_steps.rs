//! The step contract served by the T5 encoder-decoder: prefill encodes each row's source (the
//! prompt ids, right-padded and masked) once, computes every decoder layer's cross-attention
//! keys and values, and feeds the decoder start token; each step grows the decoder's
//! self-attention cache by one position.

use crate::steps::{RowBatch, RowInput, StepModel};
use crate::{GenerateError, Result};
use candle_core::{Device, Tensor};
use tasklm_models::seq2seq::{T5Cache, T5};

/// Sources longer than this are refused (T5's relative positions have no hard limit; this
/// bounds the (S x S) attention a prompt can ask for).
pub const MAX_SOURCE_TOKENS: usize = 4096;
/// The most tokens a row may generate.
pub const MAX_TARGET_TOKENS: usize = 4096;

/// [`StepModel`] for [`T5`]: a row's prompt is its source; its decoder starts from the model's
/// decoder start token.
pub struct T5Steps<'a> {
    model: &'a T5,
    pad_id: u32,
}

impl<'a> T5Steps<'a> {
    pub fn new(model: &'a T5) -> Self {
        let pad_id = model.config().pad_token_id.unwrap_or(0);
        Self { model, pad_id }
    }
}

/// A T5 running batch: the decoder cache (encoder outputs included), one row per sequence.
#[derive(Default)]
pub struct Seq2SeqBatch {
    cache: Option<T5Cache>,
    rows: usize,
}

impl RowBatch for Seq2SeqBatch {
    fn len(&self) -> usize {
        self.rows
    }
}

impl StepModel for T5Steps<'_> {
    type Batch = Seq2SeqBatch;

    fn new_batch(&self) -> Seq2SeqBatch {
        Seq2SeqBatch::default()
    }

    fn prefill(&self, batch: &mut Seq2SeqBatch, rows: &[RowInput]) -> Result<Tensor> {
        if batch.rows > 0 {
            return Err(GenerateError::InvalidParam(
                "a seq2seq batch takes all its rows in one prefill (joining a running batch \
                 is not supported)"
                    .into(),
            ));
        }
        if rows.iter().any(|r| !r.embeds.is_empty()) {
            return Err(GenerateError::InvalidParam(
                "a seq2seq source is token ids only".into(),
            ));
        }
        let s = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * s);
        let mut mask = Vec::with_capacity(rows.len());
        for r in rows {
            ids.extend(&r.ids);
            ids.extend(std::iter::repeat_n(self.pad_id, s - r.ids.len()));
            let mut m = vec![1u8; r.ids.len()];
            m.resize(s, 0);
            mask.push(m);
        }
        let device = self.device();
        let source = Tensor::from_vec(ids, (rows.len(), s), device)?;
        let enc = self.model.encode(&source, &mask, false)?;
        let mut cache = self.model.start_cache(&enc, &mask)?;
        let start = self.model.config().decoder_start();
        let first = Tensor::from_vec(vec![start; rows.len()], (rows.len(), 1), device)?;
        let logits = self
            .model
            .logits(&self.model.decode(&first, &mut cache, false)?)?;
        batch.cache = Some(cache);
        batch.rows = rows.len();
        Ok(logits.squeeze(1)?)
    }

    fn step(&self, batch: &mut Seq2SeqBatch, tokens: &[u32]) -> Result<Tensor> {
        if tokens.len() != batch.rows {
            return Err(GenerateError::RowCount {
                what: "tokens",
                expected: batch.rows,
                got: tokens.len(),
            });
        }
        let cache = batch.cache.as_mut().ok_or(GenerateError::RowCount {
            what: "tokens",
            expected: 0,
            got: tokens.len(),
        })?;
        let ids = Tensor::from_vec(tokens.to_vec(), (tokens.len(), 1), self.device())?;
        let logits = self.model.logits(&self.model.decode(&ids, cache, false)?)?;
        Ok(logits.squeeze(1)?)
    }

    fn select(&self, batch: &mut Seq2SeqBatch, rows: &[usize]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= batch.rows) {
            return Err(GenerateError::RowOutOfRange {
                row: bad,
                rows: batch.rows,
            });
        }
        if let Some(cache) = batch.cache.as_mut() {
            cache.select(rows)?;
        }
        batch.rows = rows.len();
        if rows.is_empty() {
            batch.cache = None;
        }
        Ok(())
    }

    fn max_prompt_tokens(&self) -> usize {
        MAX_SOURCE_TOKENS
    }

    fn max_new_tokens(&self, _prompt_tokens: usize) -> usize {
        MAX_TARGET_TOKENS
    }

    fn decoder_prompt(&self, _row: &RowInput) -> Vec<u32> {
        vec![self.model.config().decoder_start()]
    }

    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn device(&self) -> &Device {
        &Device::Cpu
    }
}
