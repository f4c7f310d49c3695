//! Sentence embeddings from an encoder, as sentence-transformers computes them: `[CLS] text
//! [SEP]` cut to the model's `max_seq_length`, the pooling its `modules.json` names (mean over
//! the attention mask when it names none), then L2 normalisation when the model has a
//! `Normalize` module (or no `modules.json` at all).

//!
//! The one implementation: the server's `/v1/embeddings`, `tasklm embed` and the retrieval
//! index all embed through [`Embedder`].

use crate::{Checkpoint, HubError, LoadOptions, ModelSource, Result};
use candle_core::Device;
use serde_json::Value;
use std::path::Path;
use tasklm_models::{EncoderInput, Pool};
use tasklm_text::TextTokenizer;

/// Inputs embedded in one forward pass unless the caller says otherwise.
pub const DEFAULT_BATCH: usize = 32;

/// An encoder that turns texts into vectors.
pub struct Embedder {
    checkpoint: Checkpoint,
    cls_id: u32,
    sep_id: u32,
    /// Longest input in tokens, specials included.
    pub max_len: usize,
    pool: Pool,
    normalize: bool,
    pub dims: usize,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// (pooling, normalize) from a sentence-transformers directory's `modules.json` and its
/// pooling module's `config.json`; mean pooling with normalisation when there is none.
pub fn sentence_transformers_head(dir: &Path) -> Result<(Pool, bool)> {
    let Some(modules) = read_json(&dir.join("modules.json")) else {
        return Ok((Pool::Mean, true));
    };
    let list = modules.as_array().cloned().unwrap_or_default();
    let of_type = |suffix: &str| {
        list.iter().find(|m| {
            m.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(suffix))
        })
    };
    let normalize = of_type(".Normalize").is_some();
    let pool = match of_type(".Pooling") {
        None => Pool::Mean,
        Some(m) => {
            let sub = m.get("path").and_then(Value::as_str).unwrap_or("1_Pooling");
            let cfg_path = dir.join(sub).join("config.json");
            let cfg = read_json(&cfg_path).unwrap_or(Value::Null);
            let on = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
            if on("pooling_mode_mean_tokens") || cfg.is_null() {
                Pool::Mean
            } else if on("pooling_mode_cls_token") {
                Pool::Cls
            } else if on("pooling_mode_lasttoken") {
                Pool::Last
            } else {
                return Err(HubError::file(
                    &cfg_path,
                    "only mean, CLS and last-token pooling are supported",
                ));
            }
        }
    };
    Ok((pool, normalize))
}

impl Embedder {
    pub fn load(source: &ModelSource) -> Result<Self> {
        let checkpoint = crate::load_model(source, LoadOptions::default(), &Device::Cpu)?;
        let (Some(bert), Some(sp)) = (checkpoint.encoder(), checkpoint.encoder_specials) else {
            return Err(HubError::file(
                source.path(),
                "embeddings need an encoder (BERT family)",
            ));
        };
        let cfg = bert.config();
        let dims = cfg.hidden_size;
        let dir = source.path();
        let max_len = read_json(&dir.join("sentence_bert_config.json"))
            .and_then(|c| c.get("max_seq_length")?.as_u64())
            .map_or(cfg.max_position_embeddings, |n| {
                (n as usize).min(cfg.max_position_embeddings)
            });
        let (pool, normalize) = sentence_transformers_head(dir)?;
        Ok(Self {
            cls_id: sp.cls_id,
            sep_id: sp.sep_id,
            checkpoint,
            max_len,
            pool,
            normalize,
            dims,
        })
    }

    /// `[CLS] ids [SEP]`, cut to `max_len`.
    fn framed(&self, mut ids: Vec<u32>) -> Vec<u32> {
        ids.truncate(self.max_len.saturating_sub(2));
        let mut out = Vec::with_capacity(ids.len() + 2);
        out.push(self.cls_id);
        out.extend(ids);
        out.push(self.sep_id);
        out
    }

    /// Token ids of a text, without specials.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.checkpoint.tokenizer.encode(text, false)?)
    }

    /// The model's tokenizer (for character offsets of its tokens).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.checkpoint.tokenizer
    }

    /// Where the model was loaded from.
    pub fn source(&self) -> &ModelSource {
        &self.checkpoint.source
    }

    /// One vector per text, in batches of `batch` inputs.
    pub fn embed_texts(&self, texts: &[&str], batch: usize) -> Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.embed_batched(&ids, batch)?.0)
    }

    pub fn vocab_size(&self) -> usize {
        self.checkpoint.tokenizer.vocab_size()
    }

    /// One vector per input (token ids without specials) and the tokens read in all.
    pub fn embed(&self, inputs: &[Vec<u32>]) -> Result<(Vec<Vec<f32>>, usize)> {
        self.embed_batched(inputs, DEFAULT_BATCH)
    }

    /// As [`Embedder::embed`], `batch` inputs (at least one) per forward pass.
    pub fn embed_batched(
        &self,
        inputs: &[Vec<u32>],
        batch: usize,
    ) -> Result<(Vec<Vec<f32>>, usize)> {
        let Some(bert) = self.checkpoint.encoder() else {
            return Err(HubError::file(self.source().path(), "not an encoder"));
        };
        let pad = self.checkpoint.tokenizer.pad_id();
        let mut tokens = 0;
        // Batches of similar length waste less on padding: sort by length, answer in order.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].len());
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs.len()];
        for chunk in order.chunks(batch.max(1)) {
            let rows: Vec<(Vec<u32>, Vec<u32>)> = chunk
                .iter()
                .map(|&i| {
                    let ids = self.framed(inputs[i].clone());
                    let types = vec![0u32; ids.len()];
                    (ids, types)
                })
                .collect();
            tokens += rows.iter().map(|r| r.0.len()).sum::<usize>();
            let input = EncoderInput::right_padded(&rows, pad, &Device::Cpu)?;
            let hidden = bert.forward_t(&input, false)?; // (B, T, H)
            let mut pooled = self.pool.forward(&hidden, Some(&input.key_mask))?; // (B, H)
            if self.normalize {
                let norm = pooled
                    .sqr()?
                    .sum_keepdim(1)?
                    .sqrt()?
                    .clamp(1e-12, f32::MAX)?; // (B, 1)
                pooled = pooled.broadcast_div(&norm)?;
            }
            for (&i, v) in chunk.iter().zip(pooled.to_vec2::<f32>()?) {
                vectors[i] = Some(v);
            }
        }
        let out = vectors
            .into_iter()
            .map(|v| {
                v.ok_or_else(|| HubError::file(self.source().path(), "an input got no vector"))
            })
            .collect::<Result<_>>()?;
        Ok((out, tokens))
    }
}

/// Cosine similarity, for tests and callers that compare vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
