//! The retrieval half of RAG: an opened `tasklm index` (a directory or a PostgreSQL store,
//! `tasklm_rag::IndexLocation`) with the embedding model it was built with, answering many
//! questions in one batch of query embeddings.

use crate::{Result, TaskError};
use std::sync::Mutex;
use tasklm_rag::{EmbeddingModel, Hit, IndexLocation, Mode, OpenIndex, SearchOptions};

/// Questions embedded per forward pass.
const QUERY_BATCH: usize = 64;

/// An index ready to search.
pub struct Retriever {
    /// The index as messages show it (a URL without its password).
    pub location: String,
    /// A Postgres store searches through its one connection, hence the lock.
    index: Mutex<OpenIndex>,
    /// Absent for BM25, which needs no query embedding.
    model: Option<EmbeddingModel>,
    pub mode: Mode,
    pub k: usize,
}

impl Retriever {
    /// Opens the index at `spec` (a directory, or a `postgres://` URL) and, unless `mode` is
    /// BM25, its embedding model (`model`, which must be the one the index was built with, or
    /// else that one).
    pub fn open(
        spec: &str,
        mode: Mode,
        k: usize,
        model: Option<&str>,
        progress: bool,
    ) -> Result<Self> {
        let location = IndexLocation::parse(spec)?;
        let index = location.open()?;
        let model = match mode.needs_vector() {
            true => Some(location.model(index.manifest(), model, progress)?),
            false => None,
        };
        Ok(Self {
            location: location.display(),
            index: Mutex::new(index),
            model,
            mode,
            k,
        })
    }

    /// The top `k` chunks of each question, best first.
    pub fn retrieve(&self, questions: &[&str]) -> Result<Vec<Vec<Hit>>> {
        let vectors = match &self.model {
            Some(m) => m.embedder.embed_texts(questions, QUERY_BATCH)?,
            None => Vec::new(),
        };
        let mut index = self.index.lock().map_err(|_| {
            TaskError::Invalid(format!(
                "the index {} was left unusable by a failed search",
                self.location
            ))
        })?;
        let opts = SearchOptions::default();
        questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let v = vectors.get(i).map(Vec::as_slice);
                Ok(index.search(q, v, self.k, self.mode, &opts)?)
            })
            .collect()
    }
}
