//! What a task gives the trainer: its parameters, a loss over chosen training examples, an
//! evaluation, and the files (config, tokenizer, task description) that sit beside the weights.

use crate::Result;
use candle_core::{Tensor, Var};
use std::path::Path;

/// A summed loss over some examples.
pub struct LossSum {
    /// Sum of the per-unit losses (a scalar tensor in the autograd graph).
    pub sum: Tensor,
    /// Units scored (supervised tokens for language modelling); the loss is `sum / scored`
    /// over the whole accumulated batch.
    pub scored: usize,
    /// Input tokens processed, for throughput.
    pub tokens: usize,
}

/// Named metric values, in the order they are printed.
pub type Metrics = Vec<(String, f64)>;

pub trait Objective {
    /// The trainable parameters under the names `model.safetensors` stores them by.
    fn params(&self) -> Vec<(String, Var)>;
    /// Number of training examples.
    fn train_len(&self) -> usize;
    /// Each training example's length in tokens, for batching similar lengths together
    /// (`group_by_length`); None when it does not apply.
    fn train_lengths(&self) -> Option<Vec<usize>> {
        None
    }
    /// The micro-batches of one pass over the data, given the pass's shuffled (or
    /// length-grouped) `order`; every example once. None (the default): consecutive runs of
    /// `batch_size` examples of `order`. Retrieval uses it to keep duplicates out of a batch.
    fn train_batches(&self, order: &[usize], batch_size: usize) -> Option<Vec<Vec<usize>>> {
        let _ = (order, batch_size);
        None
    }
    /// Loss over the training examples at `indices`, in training mode (dropout on).
    fn train_loss(&self, indices: &[usize]) -> Result<LossSum>;
    /// Metrics on the evaluation data (`loss`, `perplexity`, ...); None without one.
    fn evaluate(&self) -> Result<Option<Metrics>>;
    /// The file the final weights are written to: `model.safetensors`, or a LoRA run's
    /// `adapter_model.safetensors`.
    fn weights_file(&self) -> &str {
        "model.safetensors"
    }
    /// Writes everything but the weights (config, tokenizer, `tasklm.json`) into `dir`.
    fn write_files(&self, dir: &Path) -> Result<()>;
}
