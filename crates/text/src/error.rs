use std::path::PathBuf;

/// Errors from tokenizers and templates; each names the file or field involved.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
}

pub type Result<T> = std::result::Result<T, TextError>;

impl TextError {
    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}

/// The message of a caught panic (a `&str` or `String` payload; empty otherwise), for the
/// errors that stand in for panics inside minijinja and tokenizers.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
