//! tasklm-train: the trainer every task shares (`trainer`), and the optimizer, learning-rate
//! schedules and gradient clipping it uses, each matching PyTorch/transformers on golden
//! fixtures (`scripts/golden/optim.py`).

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod clip;
mod error;
mod fused_adamw;
mod grads;
mod lm_loss;
pub mod lm_objective;
pub mod lora;
mod mnrl;
mod optim;
mod schedule;
mod seq2seq_loss;
pub mod trainer;

pub use clip::clip_grad_norm;
pub use error::{Result, TrainError};
pub use grads::Gradients;
pub use lm_loss::{causal_lm_loss, input_lm_loss};
pub use lm_objective::{lm_eval, trainable_decoder, trainable_decoder_lora, LmObjective};
pub use lora::{LoraParams, LoraTraining};
pub use mnrl::{l2_normalize, mnrl_loss, MNRL_SCALE};
pub use optim::{AdamW, AdamWConfig};
pub use schedule::{LrSchedule, ScheduleKind};
pub use seq2seq_loss::{label_smoothed_sum, seq2seq_train_loss};
pub use trainer::{
    accumulate, epoch_order, train, write_model, LossSum, Metrics, Objective, TrainArgs,
    TrainOptions, TrainSummary,
};
