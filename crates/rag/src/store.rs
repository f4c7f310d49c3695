//! The index on disk: a directory holding versions, each complete in its own folder, and a
//! `CURRENT` file naming the one to read.
//!
//! ```text
//! INDEX/CURRENT                  "v0000000003"
//! INDEX/v0000000003/manifest.json  model, dims, chunking, counts, version
//! INDEX/v0000000003/chunks.jsonl   one chunk a line: doc id, title, character span, text
//! INDEX/v0000000003/vectors.f32    the chunks' vectors, row-major little-endian f32
//! INDEX/v0000000003/hnsw.bin       the HNSW graph, past `hnsw_min_chunks` chunks
//! INDEX/v0000000003/bm25/          tantivy's index of the chunk texts
//! ```
//!
//! A writer fills `INDEX/.tmp-PID-NANOS/`, syncs it, renames it to the next version, then
//! replaces `CURRENT` by renaming a synced temporary file over it, and only then removes older
//! versions and abandoned temporary folders. A writer killed at any point (SIGKILL included)
//! leaves `CURRENT` naming a complete version. One writer at a time.

use crate::bm25::Bm25Writer;
use crate::chunk::{Chunk, ChunkConfig};
use crate::hnsw::{Hnsw, HnswParams};
use crate::{RagError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const FORMAT: u32 = 1;
pub(crate) const CURRENT: &str = "CURRENT";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const CHUNKS: &str = "chunks.jsonl";
pub(crate) const VECTORS: &str = "vectors.f32";
pub(crate) const HNSW: &str = "hnsw.bin";
pub(crate) const BM25: &str = "bm25";
const TMP_PREFIX: &str = ".tmp-";

/// Chunks from which an index also gets an HNSW graph and dense search uses it: below, exact
/// search over every vector takes a few milliseconds.
pub const DEFAULT_HNSW_MIN_CHUNKS: usize = 20_000;

/// What a version holds, written last into its folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub version: u64,
    /// The embedding model as given to `index build` (catalog name or path).
    pub model: String,
    /// The directory it resolved to.
    pub model_path: String,
    pub dims: usize,
    pub chunking: ChunkConfig,
    pub chunks: usize,
    pub documents: usize,
    /// Whether this version has an HNSW graph (`chunks >= hnsw_min_chunks`).
    pub hnsw: bool,
    pub hnsw_min_chunks: usize,
}

impl Manifest {
    /// The stats `index stats` prints for an index at `index` taking `disk_bytes`, either store.
    pub fn stats(&self, index: String, disk_bytes: u64) -> serde_json::Value {
        serde_json::json!({
            "index": index,
            "version": self.version,
            "model": self.model,
            "model_path": self.model_path,
            "dims": self.dims,
            "chunk_tokens": self.chunking.tokens,
            "chunk_overlap": self.chunking.overlap,
            "documents": self.documents,
            "chunks": self.chunks,
            "hnsw": self.hnsw,
            "hnsw_min_chunks": self.hnsw_min_chunks,
            "disk_bytes": disk_bytes,
        })
    }
}

/// The version folder `CURRENT` names, or None when `root` has no index.
pub(crate) fn current_version(root: &Path) -> Result<Option<(u64, PathBuf)>> {
    let path = root.join(CURRENT);
    let name = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RagError::file(&path, e)),
    };
    let version = name
        .strip_prefix('v')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| RagError::file(&path, format!("names `{name}`, not a version (v...)")))?;
    Ok(Some((version, root.join(name))))
}

fn version_name(v: u64) -> String {
    format!("v{v:010}")
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| RagError::file(path, e))
}

/// Syncs a directory's entries (a rename inside it).
fn sync_dir(path: &Path) -> Result<()> {
    sync_file(path)
}

/// Writes one new version of an index: chunks and vectors as they come, then the graph, the
/// manifest and the switch.
pub struct VersionWriter {
    root: PathBuf,
    tmp: PathBuf,
    chunks: BufWriter<File>,
    vectors: BufWriter<File>,
    bm25: Bm25Writer,
    dims: usize,
    rows: usize,
    doc_ids: HashSet<String>,
}

impl VersionWriter {
    /// Starts a version in `root` (created when missing); a folder that holds something other
    /// than an index is refused.
    pub fn create(root: &Path, dims: usize) -> Result<Self> {
        if root.exists() && current_version(root)?.is_none() {
            let mut entries = std::fs::read_dir(root).map_err(|e| RagError::file(root, e))?;
            let foreign = entries.any(|e| {
                e.map(|e| !e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
                    .unwrap_or(true)
            });
            if foreign {
                return Err(RagError::file(
                    root,
                    "exists and is not an index (no CURRENT file): give a new or empty folder",
                ));
            }
        }
        std::fs::create_dir_all(root).map_err(|e| RagError::file(root, e))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = root.join(format!("{TMP_PREFIX}{}-{nanos}", std::process::id()));
        std::fs::create_dir(&tmp).map_err(|e| RagError::file(&tmp, e))?;
        let create = |name: &str| -> Result<BufWriter<File>> {
            let p = tmp.join(name);
            Ok(BufWriter::new(
                File::create(&p).map_err(|e| RagError::file(&p, e))?,
            ))
        };
        Ok(Self {
            chunks: create(CHUNKS)?,
            vectors: create(VECTORS)?,
            bm25: Bm25Writer::create(&tmp.join(BM25))?,
            root: root.to_path_buf(),
            tmp,
            dims,
            rows: 0,
            doc_ids: HashSet::new(),
        })
    }

    /// Whether a chunk of document `id` was pushed.
    pub fn has_doc(&self, id: &str) -> bool {
        self.doc_ids.contains(id)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn push(&mut self, chunk: &Chunk, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dims {
            return Err(RagError::Invalid(format!(
                "a vector of {} dimensions for an index of {}",
                vector.len(),
                self.dims
            )));
        }
        let line = serde_json::to_string(chunk).map_err(|e| RagError::Invalid(e.to_string()))?;
        let io = |e: std::io::Error| RagError::file(&self.tmp, e);
        writeln!(self.chunks, "{line}").map_err(io)?;
        for x in vector {
            self.vectors.write_all(&x.to_le_bytes()).map_err(io)?;
        }
        self.bm25.add(self.rows as u64, &chunk.text)?;
        if !self.doc_ids.contains(&chunk.doc_id) {
            self.doc_ids.insert(chunk.doc_id.clone());
        }
        self.rows += 1;
        Ok(())
    }

    /// Gives the version up, removing what was written of it (the current one is untouched).
    pub fn abandon(self) {
        let tmp = self.tmp.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(tmp);
    }

    /// Finishes the version (`manifest`'s counts, version and graph flag are filled here) and
    /// makes it the current one.
    pub fn commit(self, mut manifest: Manifest) -> Result<Manifest> {
        let Self {
            root,
            tmp,
            chunks,
            vectors,
            bm25,
            rows,
            doc_ids,
            dims,
        } = self;
        for (w, name) in [(chunks, CHUNKS), (vectors, VECTORS)] {
            let path = tmp.join(name);
            let file = w
                .into_inner()
                .map_err(|e| RagError::file(&path, e.error()))?;
            file.sync_all().map_err(|e| RagError::file(&path, e))?;
        }
        bm25.finish()?;
        manifest.format = FORMAT;
        manifest.dims = dims;
        manifest.chunks = rows;
        manifest.documents = doc_ids.len();
        manifest.hnsw = rows >= manifest.hnsw_min_chunks;
        if manifest.hnsw {
            let vectors = read_vectors(&tmp.join(VECTORS), rows, dims)?;
            let graph = Hnsw::build(&vectors, dims, HnswParams::default());
            write_synced(&tmp.join(HNSW), &graph.to_bytes())?;
        }
        let previous = current_version(&root)?;
        manifest.version = previous.as_ref().map_or(1, |p| p.0 + 1);
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| RagError::Invalid(e.to_string()))?;
        write_synced(&tmp.join(MANIFEST), &json)?;
        sync_dir(&tmp)?;
        let name = version_name(manifest.version);
        let dest = root.join(&name);
        std::fs::rename(&tmp, &dest).map_err(|e| RagError::file(&dest, e))?;
        sync_dir(&root)?;
        let current_tmp = root.join(format!("{TMP_PREFIX}{CURRENT}-{}", std::process::id()));
        write_synced(&current_tmp, name.as_bytes())?;
        std::fs::rename(&current_tmp, root.join(CURRENT))
            .map_err(|e| RagError::file(root.join(CURRENT), e))?;
        sync_dir(&root)?;
        remove_stale(&root, &name)?;
        Ok(manifest)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| RagError::file(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| RagError::file(path, e))
}

/// Removes every version but `keep` and every abandoned temporary folder or file.
fn remove_stale(root: &Path, keep: &str) -> Result<()> {
    let entries = std::fs::read_dir(root).map_err(|e| RagError::file(root, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_version = name.starts_with('v') && name[1..].bytes().all(|b| b.is_ascii_digit());
        if name == keep || !(is_version || name.starts_with(TMP_PREFIX)) {
            continue;
        }
        let p = e.path();
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(|e| RagError::file(&p, e))?;
    }
    Ok(())
}

/// `rows * dims` little-endian floats from `path`, checking its length.
pub(crate) fn read_vectors(path: &Path, rows: usize, dims: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| RagError::file(path, e))?;
    if bytes.len() != rows * dims * 4 {
        return Err(RagError::file(
            path,
            format!(
                "{} bytes, expected {rows} vectors of {dims} floats ({} bytes)",
                bytes.len(),
                rows * dims * 4
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Bytes on disk under `path`.
pub(crate) fn disk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                disk_bytes(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}
