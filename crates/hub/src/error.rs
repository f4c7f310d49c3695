use std::path::PathBuf;

/// Errors from finding, fetching and loading models.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("unknown model `{name}`: not a directory, not a .gguf file, and not in the catalog (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("pulling `{name}`: {msg}")]
    Pull { name: String, msg: String },
    #[error("hub model `{id}`: {msg}")]
    Hub { id: String, msg: String },
    #[error(transparent)]
    Model(#[from] tasklm_models::ModelError),
    #[error(transparent)]
    Text(#[from] tasklm_text::TextError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, HubError>;

impl HubError {
    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
