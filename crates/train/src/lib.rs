//! tasklm-train: the optimizer, learning-rate schedules and gradient clipping the trainer uses,
//! each matching PyTorch/transformers on golden fixtures (`scripts/golden/optim.py`).

mod clip;
mod error;
mod lm_loss;
mod optim;
mod schedule;

pub use clip::clip_grad_norm;
pub use error::{Result, TrainError};
pub use lm_loss::causal_lm_loss;
pub use optim::{AdamW, AdamWConfig};
pub use schedule::{LrSchedule, ScheduleKind};
