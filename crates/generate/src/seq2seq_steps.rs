//! The step contract served by every encoder-decoder ([`Seq2SeqModel`]: T5, BART, Marian):
//! prefill encodes each row's source (the prompt ids, right-padded and masked) once, computes
//! every decoder layer's cross-attention keys and values, and feeds the decoder start token;
//! each step grows the decoder's self-attention cache by one position.

use crate::steps::{RowBatch, RowInput, StepModel};
use crate::{GenerateError, Result};
use candle_core::{Device, Tensor};
use tasklm_models::seq2seq::{EncoderDecoder, Seq2SeqCache, Seq2SeqModel};

/// Sources longer than this are refused when the encoder's positions do not bound them
/// sooner (T5's relative positions have no hard limit; this bounds the (S x S) attention a
/// prompt can ask for).
pub const MAX_SOURCE_TOKENS: usize = 4096;
/// The most tokens a row may generate.
pub const MAX_TARGET_TOKENS: usize = 4096;

/// [`StepModel`] for an encoder-decoder: a row's prompt is its source; its decoder starts from
/// the model's decoder start token.
pub struct Seq2SeqSteps<'a> {
    model: &'a Seq2SeqModel,
    pad_id: u32,
    never: Vec<u32>,
}

impl<'a> Seq2SeqSteps<'a> {
    pub fn new(model: &'a Seq2SeqModel) -> Self {
        Self {
            model,
            pad_id: model.pad_id(),
            never: model.never_generated(),
        }
    }
}

/// An encoder-decoder's running batch: the decoder cache (encoder outputs included), one row per sequence.
#[derive(Default)]
pub struct Seq2SeqBatch {
    cache: Option<Seq2SeqCache>,
    rows: usize,
}

impl RowBatch for Seq2SeqBatch {
    fn len(&self) -> usize {
        self.rows
    }
}

impl StepModel for Seq2SeqSteps<'_> {
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
        let start = self.model.decoder_start();
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
        self.model
            .max_source_tokens()
            .map_or(MAX_SOURCE_TOKENS, |m| m.min(MAX_SOURCE_TOKENS))
    }

    /// The decoder's positions hold the start token and what it generates.
    fn max_new_tokens(&self, _prompt_tokens: usize) -> usize {
        self.model
            .max_target_tokens()
            .map_or(MAX_TARGET_TOKENS, |m| {
                m.saturating_sub(1).min(MAX_TARGET_TOKENS)
            })
    }

    fn decoder_prompt(&self, _row: &RowInput) -> Vec<u32> {
        vec![self.model.decoder_start()]
    }

    fn never_generated(&self) -> &[u32] {
        &self.never
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn device(&self) -> &Device {
        &Device::Cpu
    }
}
