//! The retriever being trained: a BERT backbone whose weights keep their bare Hugging Face
//! names (`embeddings.…`, `encoder.layer.…`, as a sentence-transformers model stores them),
//! pooled and normalised as the model's `modules.json` says, so that training embeds exactly
//! as `tasklm embed` and sentence-transformers will embed the saved model.

use crate::common::encoder_input::trainable;
use crate::{Result, TaskError};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_hub::encoder::BERT_PREFIX;
use tasklm_hub::EncoderCheckpoint;
use tasklm_models::{Bert, EncoderInput, Pool};
use tasklm_text::TextTokenizer;

/// A sentence encoder with trainable weights.
pub struct Retriever {
    bert: Bert,
    params: Vec<(String, Var)>,
    pub pool: Pool,
    pub normalize: bool,
    tokenizer: TextTokenizer,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
    /// Longest input in tokens, specials included.
    pub max_len: usize,
    pub hidden: usize,
    /// The base model's directory (tokenizer and sentence-transformers files).
    pub base_dir: PathBuf,
    pub config_json: Value,
}

/// `max_seq_length` of a sentence-transformers directory's `sentence_bert_config.json`.
pub fn st_max_seq_length(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("max_seq_length")?.as_u64().map(|n| n as usize)
}

impl Retriever {
    /// Every weight of `ck`'s backbone trainable; inputs cut to `max_len` tokens (default:
    /// the model's `max_seq_length`, else its position limit).
    pub fn new(ck: EncoderCheckpoint, max_len: Option<usize>) -> Result<Self> {
        let dir = ck.dir().to_path_buf();
        let (pool, normalize) = tasklm_hub::embed::sentence_transformers_head(&dir)?;
        let prefix = format!("{BERT_PREFIX}.");
        let bare: HashMap<String, Tensor> = ck
            .tensors
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix(&prefix).map(|s| (s.to_string(), t)))
            .collect();
        if bare.is_empty() {
            return Err(TaskError::File {
                path: dir,
                msg: "no BERT backbone weights".into(),
            });
        }
        let params = trainable(bare)?;
        let tensors: HashMap<String, Tensor> = params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let bert = Bert::new(&ck.config, vb)?;
        let limit = ck.config.max_position_embeddings;
        let max_len = max_len.or_else(|| st_max_seq_length(&dir)).unwrap_or(limit);
        if max_len < 3 {
            return Err(TaskError::Invalid(format!(
                "--max-seq-len {max_len}: must leave room for text beside [CLS] and [SEP]"
            )));
        }
        let pad_id = ck.tokenizer.pad_id();
        Ok(Self {
            bert,
            params,
            pool,
            normalize,
            tokenizer: ck.tokenizer,
            cls_id: ck.cls_id,
            sep_id: ck.sep_id,
            pad_id,
            max_len: max_len.min(limit),
            hidden: ck.config.hidden_size,
            base_dir: dir,
            config_json: ck.config_json,
        })
    }

    /// The trainable parameters under their `model.safetensors` names.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    /// `[CLS] text [SEP]` cut to `max_len`, as sentence-transformers tokenizes, and whether
    /// it was cut.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let mut ids = self.tokenizer.encode(text, false)?;
        let keep = self.max_len - 2;
        let cut = ids.len() > keep;
        ids.truncate(keep);
        let mut out = Vec::with_capacity(ids.len() + 2);
        out.push(self.cls_id);
        out.extend(ids);
        out.push(self.sep_id);
        Ok((out, cut))
    }

    /// Sentence embeddings (B, H) of encoded rows: the backbone (dropout on with `train`),
    /// the pooling, and the normalisation when the model has one. Differentiable.
    pub fn embed(&self, rows: &[&[u32]], train: bool) -> Result<Tensor> {
        let rows: Vec<(Vec<u32>, Vec<u32>)> = rows
            .iter()
            .map(|r| (r.to_vec(), vec![0u32; r.len()]))
            .collect();
        let input = EncoderInput::right_padded(&rows, self.pad_id, &Device::Cpu)?;
        let hidden = self.bert.forward_t(&input, train)?; // (B, T, H)
        let pooled = self.pool.forward(&hidden, Some(&input.key_mask))?; // (B, H)
        if self.normalize {
            return Ok(tasklm_train::l2_normalize(&pooled)?);
        }
        Ok(pooled)
    }
}
