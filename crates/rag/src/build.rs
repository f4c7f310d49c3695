//! Writing indexes: `build` (a new index, or a new version replacing the current one), `add`
//! (documents into the current one) and `delete` (documents out of it). Each writes a whole new
//! version through [`VersionWriter`]; what is already indexed is copied, not embedded again.

use crate::chunk::{chunk_document, Chunk, ChunkConfig};
use crate::docs::{read_documents, Document};
use crate::index::{check_model, read_manifest, Index};
use crate::store::{Manifest, VersionWriter, DEFAULT_HNSW_MIN_CHUNKS};
use crate::{RagError, Result};
use std::collections::HashSet;
use std::path::Path;
use tasklm_hub::Embedder;

/// An embedding model with the name it was given by.
pub struct EmbeddingModel {
    /// As given (catalog name, directory).
    pub spec: String,
    pub embedder: Embedder,
}

impl EmbeddingModel {
    /// Resolves and loads `spec` (`progress`: show a download bar when it is pulled).
    pub fn load(spec: &str, progress: bool) -> Result<Self> {
        let source = tasklm_hub::resolve(spec, progress)?;
        Ok(Self {
            spec: spec.to_string(),
            embedder: Embedder::load(&source)?,
        })
    }

    /// The model to add to or search the index at `root` with: `given`, which must be the one
    /// it was built with, or else that one (by name, or by its directory when the name no
    /// longer resolves).
    pub fn for_index(
        root: &Path,
        manifest: &Manifest,
        given: Option<&str>,
        progress: bool,
    ) -> Result<Self> {
        let (spec, source) = match given {
            Some(spec) => (spec, tasklm_hub::resolve(spec, progress)?),
            None => match tasklm_hub::resolve(&manifest.model, progress) {
                Ok(source) => (manifest.model.as_str(), source),
                Err(_) => (
                    manifest.model.as_str(),
                    tasklm_hub::resolve(&manifest.model_path, progress)?,
                ),
            },
        };
        check_model(root, manifest, spec, source.path())?;
        Ok(Self {
            spec: spec.to_string(),
            embedder: Embedder::load(&source)?,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.embedder.source().path()
    }
}

/// How `build` cuts and indexes.
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    pub chunking: ChunkConfig,
    /// Chunks per forward pass of the encoder.
    pub batch: usize,
    pub hnsw_min_chunks: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            chunking: ChunkConfig::default(),
            batch: tasklm_hub::embed::DEFAULT_BATCH,
            hnsw_min_chunks: DEFAULT_HNSW_MIN_CHUNKS,
        }
    }
}

/// Where `Ingest` puts embedded chunks: a new version of an index directory, or a Postgres
/// transaction.
pub(crate) trait ChunkSink {
    /// Whether the destination already holds a chunk of document `id`.
    fn has_doc(&mut self, id: &str) -> Result<bool>;
    fn push(&mut self, chunk: &Chunk, vector: &[f32]) -> Result<()>;
}

impl ChunkSink for VersionWriter {
    fn has_doc(&mut self, id: &str) -> Result<bool> {
        Ok(VersionWriter::has_doc(self, id))
    }
    fn push(&mut self, chunk: &Chunk, vector: &[f32]) -> Result<()> {
        VersionWriter::push(self, chunk, vector)
    }
}

/// Chunks waiting to be embedded, flushed a few batches at a time (the encoder sorts them by
/// length, so more at once pads less).
struct Ingest<'a> {
    model: &'a EmbeddingModel,
    chunking: ChunkConfig,
    batch: usize,
    pending: Vec<(Chunk, Vec<u32>)>,
    /// Documents read from the input so far (ids), to refuse a repeated id.
    seen: HashSet<String>,
}

impl Ingest<'_> {
    fn document(&mut self, w: &mut dyn ChunkSink, doc: Document) -> Result<()> {
        // Later segments of a large text file carry its id again (offset > 0).
        if doc.offset == 0 {
            let why = if !self.seen.insert(doc.id.clone()) {
                Some("appears twice in the input (ids must be unique)")
            } else if w.has_doc(&doc.id)? {
                Some("is already in the index (`tasklm index delete` it first to replace it)")
            } else {
                None
            };
            if let Some(why) = why {
                let at = if doc.line > 0 {
                    format!("{}:{}", doc.path.display(), doc.line)
                } else {
                    doc.path.display().to_string()
                };
                return Err(RagError::Invalid(format!(
                    "{at}: document `{}` {why}",
                    doc.id
                )));
            }
        }
        let chunks = chunk_document(self.model.embedder.tokenizer(), &doc, self.chunking)?;
        if chunks.is_empty() {
            return Err(RagError::Invalid(format!(
                "{}:{}: document `{}` has no tokens",
                doc.path.display(),
                doc.line,
                doc.id
            )));
        }
        self.pending.extend(chunks);
        if self.pending.len() >= 4 * self.batch {
            self.flush(w)?;
        }
        Ok(())
    }

    fn flush(&mut self, w: &mut dyn ChunkSink) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let ids: Vec<Vec<u32>> = pending.iter().map(|p| p.1.clone()).collect();
        let (vectors, _) = self.model.embedder.embed_batched(&ids, self.batch)?;
        for ((chunk, _), v) in pending.iter().zip(&vectors) {
            w.push(chunk, v)?;
        }
        Ok(())
    }
}

/// Reads, chunks and embeds the documents of `docs` into `w` (the same chunks and vectors for
/// every store).
pub(crate) fn ingest(
    w: &mut dyn ChunkSink,
    model: &EmbeddingModel,
    docs: &Path,
    chunking: ChunkConfig,
    batch: usize,
) -> Result<()> {
    let mut ing = Ingest {
        model,
        chunking,
        batch: batch.max(1),
        pending: Vec::new(),
        seen: HashSet::new(),
    };
    read_documents(docs, &mut |doc| ing.document(w, doc))?;
    ing.flush(w)
}

/// Builds an index of `docs` at `out`: a new index, or a new version of the one there.
pub fn build(
    model: &EmbeddingModel,
    docs: &Path,
    out: &Path,
    opts: BuildOptions,
) -> Result<Manifest> {
    let max_tokens = model.embedder.max_len.saturating_sub(2);
    let chunking = opts.chunking.capped(max_tokens)?;
    let mut w = VersionWriter::create(out, model.embedder.dims)?;
    let read = ingest(&mut w, model, docs, chunking, opts.batch);
    if let Err(e) = read {
        w.abandon();
        return Err(e);
    }
    if w.rows() == 0 {
        w.abandon();
        return Err(RagError::file(docs, "no documents"));
    }
    w.commit(Manifest {
        format: 0,
        version: 0,
        model: model.spec.clone(),
        model_path: model.path().display().to_string(),
        dims: model.embedder.dims,
        chunking,
        chunks: 0,
        documents: 0,
        hnsw: false,
        hnsw_min_chunks: opts.hnsw_min_chunks,
    })
}

/// Copies every chunk of `index` whose document `keep` accepts into `w`.
fn copy(index: &Index, w: &mut VersionWriter, keep: &dyn Fn(&str) -> bool) -> Result<()> {
    let dims = index.manifest.dims;
    for (i, chunk) in index.chunks.iter().enumerate() {
        if keep(&chunk.doc_id) {
            w.push(chunk, &index.vectors[i * dims..(i + 1) * dims])?;
        }
    }
    Ok(())
}

/// Adds the documents of `docs` to the index at `root` (with the model it was built with).
pub fn add(root: &Path, model: &EmbeddingModel, docs: &Path, batch: usize) -> Result<Manifest> {
    let manifest = read_manifest(root)?;
    check_model(root, &manifest, &model.spec, model.path())?;
    let index = Index::open(root)?;
    let mut w = VersionWriter::create(root, manifest.dims)?;
    copy(&index, &mut w, &|_| true)?;
    if let Err(e) = ingest(&mut w, model, docs, manifest.chunking, batch) {
        w.abandon();
        return Err(e);
    }
    w.commit(manifest)
}

/// Removes the documents `ids` from the index at `root`; an id it does not hold is an error
/// and nothing is written.
pub fn delete(root: &Path, ids: &[String]) -> Result<Manifest> {
    let index = Index::open(root)?;
    let held: HashSet<&str> = index.chunks.iter().map(|c| c.doc_id.as_str()).collect();
    let missing: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !held.contains(id))
        .collect();
    if !missing.is_empty() {
        return Err(RagError::Invalid(format!(
            "index {}: no document with id {}",
            root.display(),
            missing.join(", ")
        )));
    }
    let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut w = VersionWriter::create(root, index.manifest.dims)?;
    copy(&index, &mut w, &|id| !gone.contains(id))?;
    w.commit(index.manifest.clone())
}
