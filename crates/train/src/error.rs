/// Errors from the training machinery; each names the parameter or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error("optimizer state: {0}")]
    State(String),
    #[error("invalid training setting: {0}")]
    Setting(String),
}

pub type Result<T> = std::result::Result<T, TrainError>;
