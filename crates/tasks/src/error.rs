/// Errors of a task run; each wraps the layer that failed, whose message names the file,
/// line or setting.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Hub(#[from] tasklm_hub::HubError),
    #[error(transparent)]
    Data(#[from] tasklm_data::DataError),
    #[error(transparent)]
    Model(#[from] tasklm_models::ModelError),
    #[error(transparent)]
    Train(#[from] tasklm_train::TrainError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Text(#[from] tasklm_text::TextError),
    #[error(transparent)]
    Rag(#[from] tasklm_rag::RagError),
    #[error(transparent)]
    Generate(#[from] tasklm_generate::GenerateError),
    #[error("{path}: {msg}")]
    File {
        path: std::path::PathBuf,
        msg: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("unknown task `{name}`: expected one of {valid}")]
    UnknownTask { name: String, valid: String },
}

pub type Result<T> = std::result::Result<T, TaskError>;
