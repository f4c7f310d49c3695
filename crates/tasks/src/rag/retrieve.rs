//! The retrieval half of RAG: an opened `tasklm index` with the embedding model it was built
//! with, answering many questions in one batch of query embeddings.

use crate::Result;
use std::path::{Path, PathBuf};
use tasklm_rag::{EmbeddingModel, Hit, Index, Mode};

/// Questions embedded per forward pass.
const QUERY_BATCH: usize = 64;

/// An index ready to search.
pub struct Retriever {
    pub root: PathBuf,
    index: Index,
    /// Absent for BM25, which needs no query embedding.
    model: Option<EmbeddingModel>,
    pub mode: Mode,
    pub k: usize,
}

impl Retriever {
    /// Opens the index at `root` and, unless `mode` is BM25, its embedding model (`model`, which
    /// must be the one the index was built with, or else that one).
    pub fn open(
        root: &Path,
        mode: Mode,
        k: usize,
        model: Option<&str>,
        progress: bool,
    ) -> Result<Self> {
        let index = Index::open(root)?;
        let model = match mode.needs_vector() {
            true => Some(EmbeddingModel::for_index(
                root,
                &index.manifest,
                model,
                progress,
            )?),
            false => None,
        };
        Ok(Self {
            root: root.to_path_buf(),
            index,
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
        questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let v = vectors.get(i).map(Vec::as_slice);
                Ok(self.index.search(q, v, self.k, self.mode)?)
            })
            .collect()
    }
}
