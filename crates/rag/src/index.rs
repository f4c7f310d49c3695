//! An index opened for reading: the current version's manifest, chunks, vectors, HNSW graph
//! and BM25 index, and the embedding model check.

use crate::bm25::Bm25;
use crate::chunk::Chunk;
use crate::hnsw::Hnsw;
use crate::store::{self, current_version, Manifest};
use crate::{RagError, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A whole index in memory (vectors and chunk texts), BM25 on disk.
pub struct Index {
    pub root: PathBuf,
    /// The version folder read.
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub chunks: Vec<Chunk>,
    pub vectors: Vec<f32>,
    pub hnsw: Option<Hnsw>,
    pub bm25: Bm25,
}

impl Index {
    /// Opens the current version of the index at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let manifest = read_manifest(root)?;
        let Some((_, dir)) = current_version(root)? else {
            return Err(RagError::NoIndex { path: root.into() });
        };
        let chunks_path = dir.join(store::CHUNKS);
        let file =
            std::fs::File::open(&chunks_path).map_err(|e| RagError::file(&chunks_path, e))?;
        let mut chunks = Vec::with_capacity(manifest.chunks);
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| RagError::line(&chunks_path, i + 1, e))?;
            let chunk: Chunk =
                serde_json::from_str(&line).map_err(|e| RagError::line(&chunks_path, i + 1, e))?;
            chunks.push(chunk);
        }
        if chunks.len() != manifest.chunks {
            return Err(RagError::file(
                &chunks_path,
                format!(
                    "{} chunks, the manifest says {}",
                    chunks.len(),
                    manifest.chunks
                ),
            ));
        }
        let vectors = store::read_vectors(&dir.join(store::VECTORS), chunks.len(), manifest.dims)?;
        let hnsw = if manifest.hnsw {
            let p = dir.join(store::HNSW);
            let bytes = std::fs::read(&p).map_err(|e| RagError::file(&p, e))?;
            Some(Hnsw::from_bytes(&bytes, chunks.len(), &p)?)
        } else {
            None
        };
        let bm25 = Bm25::open(&dir.join(store::BM25))?;
        Ok(Self {
            root: root.to_path_buf(),
            dir,
            manifest,
            chunks,
            vectors,
            hnsw,
            bm25,
        })
    }

    /// Bytes of the current version on disk.
    pub fn disk_bytes(&self) -> u64 {
        store::disk_bytes(&self.dir)
    }

    /// The index's stats as one JSON object.
    pub fn stats(&self) -> Value {
        self.manifest
            .stats(self.root.display().to_string(), self.disk_bytes())
    }
}

/// The current version's manifest, without reading the rest.
pub fn read_manifest(root: &Path) -> Result<Manifest> {
    if !root.is_dir() {
        return Err(RagError::NoIndex { path: root.into() });
    }
    let Some((_, dir)) = current_version(root)? else {
        return Err(RagError::NoIndex { path: root.into() });
    };
    let path = dir.join(store::MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| RagError::file(&path, e))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| RagError::file(&path, format!("manifest: {e}")))?;
    if m.format != store::FORMAT {
        return Err(RagError::file(
            &path,
            format!(
                "index format {}, this tasklm reads {}",
                m.format,
                store::FORMAT
            ),
        ));
    }
    Ok(m)
}

/// Errors unless the model given as `spec` (resolved to `path`) is the one the index at `root`
/// was built with: the same name, or the same directory.
pub fn check_model(root: &Path, manifest: &Manifest, spec: &str, path: &Path) -> Result<()> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let same_path = canonical(path) == canonical(Path::new(&manifest.model_path));
    if spec == manifest.model || same_path {
        return Ok(());
    }
    Err(RagError::WrongModel {
        path: root.to_path_buf(),
        built: manifest.model.clone(),
        given: spec.to_string(),
    })
}
