/// Errors from the training machinery; each names the parameter or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error("optimizer state: {0}")]
    State(String),
    #[error("invalid training setting: {0}")]
    Setting(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("{0}")]
    NonFinite(String),
    #[error("{0}")]
    Interrupted(String),
    /// An error from the task's own code (data, model, tokenizer).
    #[error(transparent)]
    Objective(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// Wraps a task's error.
    pub fn objective(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Objective(Box::new(e))
    }
}
