use std::path::PathBuf;

/// Errors from loading or running a model; each names the file, field or tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{path}: unknown architecture `{arch}` (supported: {supported})")]
    UnknownArchitecture {
        path: PathBuf,
        arch: String,
        supported: String,
    },
    #[error("{0}")]
    Msg(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub fn invalid(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
