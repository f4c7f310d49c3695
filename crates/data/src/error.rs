use std::path::PathBuf;

/// Errors from reading and encoding data; each names the file and line, or the record.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}:{line}: {msg}")]
    Record {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error(transparent)]
    Text(#[from] tasklm_text::TextError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// An error in the record at `line` of `path`.
    pub fn record(path: &std::path::Path, line: usize, msg: impl Into<String>) -> Self {
        Self::Record {
            path: path.into(),
            line,
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
