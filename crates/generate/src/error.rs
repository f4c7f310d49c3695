/// Errors from generation; each names the limit or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("prompt {row} has {tokens} tokens, more than the model's context window of {context}")]
    PromptTooLong {
        row: usize,
        tokens: usize,
        context: usize,
    },
    #[error("prompt {0} is empty: give at least one token")]
    EmptyPrompt(usize),
    #[error("{what}: {got} given for a batch of {expected} rows")]
    RowCount {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("row {row} selected from a batch of {rows} rows")]
    RowOutOfRange { row: usize, rows: usize },
    #[error("invalid sampling option: {0}")]
    InvalidParam(String),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Text(#[from] tasklm_text::TextError),
}

pub type Result<T> = std::result::Result<T, GenerateError>;
