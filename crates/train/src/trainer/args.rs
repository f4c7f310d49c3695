//! The settings every training task shares: the `tasklm train` flags and the keys of a TOML
//! recipe (`--config`), with the defaults of transformers' `TrainingArguments` where it has one.

use crate::{Result, ScheduleKind, TrainError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainArgs {
    /// Passes over the training data (ignored when `max_steps` is set).
    pub epochs: u32,
    /// Optimizer updates to take; overrides `epochs`.
    pub max_steps: Option<u64>,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer update.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub weight_decay: f64,
    /// Fraction of the updates spent warming the learning rate up from 0.
    pub warmup_ratio: f64,
    pub scheduler: ScheduleKind,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub max_grad_norm: f64,
    /// Seeds the data order.
    pub seed: u64,
    /// Batch examples of similar length together (less padding), as transformers'
    /// `group_by_length`.
    pub group_by_length: bool,
    /// Evaluate every this many updates (and always at the end); 0: only at the end.
    pub eval_every: u64,
    /// Checkpoint every this many updates (and always at the end); 0: only at the end.
    pub save_every: u64,
    /// Checkpoints kept in `OUT/checkpoints` (the newest ones).
    pub save_total_limit: usize,
    /// Consecutive updates refused for a NaN/Inf loss or gradient before training aborts.
    pub max_bad_steps: u32,
    /// Keep the model of the evaluation with the best value of this metric (`bleu`, `loss`,
    /// ...) in `OUT/best` and make it the final model, as transformers'
    /// `metric_for_best_model` with `load_best_model_at_end`.
    pub metric_for_best_model: Option<String>,
    /// Whether a higher value of `metric_for_best_model` is better [default: true, false for
    /// a metric whose name ends in `loss` or is `perplexity`].
    pub greater_is_better: Option<bool>,
}

impl Default for TrainArgs {
    fn default() -> Self {
        Self {
            epochs: 1,
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            lr: 2e-5,
            weight_decay: 0.0,
            warmup_ratio: 0.0,
            scheduler: ScheduleKind::Linear,
            max_grad_norm: 1.0,
            seed: 42,
            group_by_length: true,
            eval_every: 0,
            save_every: 500,
            save_total_limit: 2,
            max_bad_steps: 3,
            metric_for_best_model: None,
            greater_is_better: None,
        }
    }
}

impl TrainArgs {
    /// Reads a TOML recipe; unknown keys are errors naming the file.
    pub fn from_toml(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Setting(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| TrainError::Setting(format!("{}: {e}", path.display())))
    }

    /// Checks every setting, naming the one at fault.
    /// Whether a higher `metric_for_best_model` is better (transformers' default: unless the
    /// name ends in `loss`; perplexity too).
    pub fn higher_is_better(&self) -> bool {
        self.greater_is_better.unwrap_or_else(|| {
            let m = self.metric_for_best_model.as_deref().unwrap_or("loss");
            !(m.ends_with("loss") || m == "perplexity")
        })
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Setting(m));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return bad("grad_accum must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a positive number, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "warmup_ratio must be in [0, 1), got {}",
                self.warmup_ratio
            ));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return bad(format!(
                "max_grad_norm must be >= 0, got {}",
                self.max_grad_norm
            ));
        }
        if self.max_steps == Some(0) || (self.max_steps.is_none() && self.epochs == 0) {
            return bad("nothing to train: epochs or max_steps must be at least 1".into());
        }
        if self.max_bad_steps == 0 {
            return bad("max_bad_steps must be at least 1".into());
        }
        Ok(())
    }

    /// Micro-batches in one pass over `n` examples, and the updates they make.
    pub fn steps_per_epoch(&self, n: usize) -> u64 {
        let micro = n.div_ceil(self.batch_size);
        micro.div_ceil(self.grad_accum) as u64
    }

    /// Updates the run takes over `n` training examples.
    pub fn total_steps(&self, n: usize) -> u64 {
        self.max_steps
            .unwrap_or(u64::from(self.epochs) * self.steps_per_epoch(n))
    }
}
