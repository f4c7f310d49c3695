//! Retrieval as the trainer's [`Objective`]: batches without a repeated text, each batch's
//! queries and documents embedded (dropout on), and the multiple-negatives ranking loss of
//! each query against every positive and hard negative of its batch.

use super::batches::no_duplicate_batches;
use super::eval::ranking_metrics;
use super::model::Retriever;
use super::pairs::Pair;
use super::st_dir::write_st_files;
use candle_core::{Tensor, Var};
use serde_json::Value;
use std::path::Path;
use tasklm_train::trainer::{LossSum, Metrics, Objective};
use tasklm_train::TrainError;

/// One pair's token ids, `[CLS] … [SEP]` each.
#[derive(Clone, Debug)]
pub struct EncodedPair {
    pub query: Vec<u32>,
    pub positive: Vec<u32>,
    pub negative: Option<Vec<u32>>,
}

/// What the trainer runs for `--task retrieval`.
pub struct RetrievalObjective {
    pub model: Retriever,
    /// The kept training pairs (their texts keep duplicates out of a batch) and their ids.
    pub pairs: Vec<Pair>,
    pub rows: Vec<EncodedPair>,
    pub eval: Vec<Pair>,
    /// Similarity scale of the loss ([`tasklm_train::MNRL_SCALE`]).
    pub scale: f64,
    /// `tasklm.json`.
    pub provenance: Value,
}

impl RetrievalObjective {
    /// The summed loss of the pairs at `indices` and the queries it scored, with dropout as
    /// `train` says (the golden test turns it off).
    pub fn loss(&self, indices: &[usize], train: bool) -> crate::Result<(Tensor, usize, usize)> {
        let picked: Vec<&EncodedPair> = indices.iter().filter_map(|&i| self.rows.get(i)).collect();
        let queries: Vec<&[u32]> = picked.iter().map(|r| r.query.as_slice()).collect();
        let mut docs: Vec<&[u32]> = picked.iter().map(|r| r.positive.as_slice()).collect();
        docs.extend(picked.iter().filter_map(|r| r.negative.as_deref()));
        let tokens = queries.iter().chain(&docs).map(|r| r.len()).sum();
        let q = self.model.embed(&queries, train)?;
        let d = self.model.embed(&docs, train)?;
        let (sum, scored) = tasklm_train::mnrl_loss(&q, &d, self.scale)?;
        Ok((sum, scored, tokens))
    }
}

impl Objective for RetrievalObjective {
    fn params(&self) -> Vec<(String, Var)> {
        self.model.params()
    }

    fn train_len(&self) -> usize {
        self.rows.len()
    }

    fn train_batches(&self, order: &[usize], batch_size: usize) -> Option<Vec<Vec<usize>>> {
        let texts = |i: usize| {
            self.pairs
                .get(i)
                .map(|p| p.texts().collect())
                .unwrap_or_default()
        };
        Some(no_duplicate_batches(order, batch_size, texts))
    }

    fn train_loss(&self, indices: &[usize]) -> tasklm_train::Result<LossSum> {
        let (sum, scored, tokens) = self.loss(indices, true).map_err(TrainError::objective)?;
        Ok(LossSum {
            sum,
            scored,
            tokens,
        })
    }

    fn evaluate(&self) -> tasklm_train::Result<Option<Metrics>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let m = ranking_metrics(&self.model, &self.eval).map_err(TrainError::objective)?;
        Ok(Some(m))
    }

    fn write_files(&self, dir: &Path) -> tasklm_train::Result<()> {
        write_st_files(dir, &self.model, &self.provenance)
    }
}
