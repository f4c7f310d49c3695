use std::path::PathBuf;

/// Why documents could not be read, or an index built, opened or searched.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    /// A record of a documents or queries file, by line (1-based).
    #[error("{}:{line}: {msg}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    #[error("{}: no index there (build one with `tasklm index build --model M --data DOCS --out {}`)", path.display(), path.display())]
    NoIndex { path: PathBuf },
    #[error("index {} was built with the embedding model `{built}`, not `{given}`: search and add with `{built}`, or build a new index with `{given}`", path.display())]
    WrongModel {
        path: PathBuf,
        built: String,
        given: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// A PostgreSQL store; `url` never holds the password.
    #[error("{url}: {msg}")]
    Postgres { url: String, msg: String },
    #[error("{url}: no index there (build one with `tasklm index build --model M --data DOCS --store {url}`)")]
    NoPgIndex { url: String },
    #[error("{url}: the pgvector extension is {why}")]
    NoPgvector { url: String, why: String },
    #[error("bm25 index {}: {source}", path.display())]
    Bm25 {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error(transparent)]
    Hub(#[from] tasklm_hub::HubError),
    #[error(transparent)]
    Text(#[from] tasklm_text::TextError),
}

pub type Result<T> = std::result::Result<T, RagError>;

impl RagError {
    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    pub fn line(path: impl Into<PathBuf>, line: usize, msg: impl std::fmt::Display) -> Self {
        Self::Line {
            path: path.into(),
            line,
            msg: msg.to_string(),
        }
    }

    pub fn bm25(path: impl Into<PathBuf>, source: tantivy::TantivyError) -> Self {
        Self::Bm25 {
            path: path.into(),
            source,
        }
    }
}
