//! tasklm-rag: retrieval for retrieval-augmented generation. Documents (JSONL, a folder of
//! text files, SQuAD JSON) are cut into token chunks with overlap, embedded with a
//! sentence-transformers model (`tasklm_hub::Embedder`), and stored in a persistent index
//! directory written atomically by versions: BM25 through tantivy, the dense vectors beside it
//! with exact SIMD search, and an HNSW graph past [`DEFAULT_HNSW_MIN_CHUNKS`] chunks. Search is
//! BM25, dense or hybrid (relative score fusion, or reciprocal rank fusion).
//!
//! The same chunks and vectors can live in PostgreSQL with pgvector instead ([`pg`]), for a
//! corpus past one machine's disk; [`IndexLocation`] and [`OpenIndex`] serve either store.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bm25;
mod build;
pub mod chunk;
pub mod dense;
pub mod docs;
mod error;
pub mod hnsw;
pub mod index;
mod location;
pub mod pg;
pub mod search;
pub mod store;

pub use build::{add, build, delete, BuildOptions, EmbeddingModel};
pub use chunk::{Chunk, ChunkConfig, DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP};
pub use error::{RagError, Result};
pub use index::{check_model, read_manifest, Index};
pub use location::{IndexLocation, OpenIndex};
pub use search::{
    fuse, reciprocal_rank_fusion, relative_score_fusion, Fusion, Hit, Mode, SearchOptions, RRF_K,
};
pub use store::{Manifest, DEFAULT_HNSW_MIN_CHUNKS};
