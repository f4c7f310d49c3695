//! The tables of a Postgres store. One manifest table for every index, one chunks table per
//! index (NAME from the URL's `?index=NAME`):
//!
//! ```sql
//! CREATE TABLE tasklm_indexes (
//!     name text PRIMARY KEY, format integer, version bigint,
//!     model text, model_path text, dims integer,       -- the embedding model, as for `--model`
//!     chunk_tokens integer, chunk_overlap integer,     -- the chunking
//!     documents bigint, chunks bigint, built_at timestamptz);
//! CREATE TABLE tasklm_chunks__NAME (
//!     row_no bigint PRIMARY KEY,     -- insertion order: `chunk` in hits, ties broken by it
//!     doc_id text, chunk_no integer, -- the document and the chunk's place in it
//!     char_start bigint, char_end bigint, title text, text text,
//!     embedding vector(DIM),
//!     tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
//!     UNIQUE (doc_id, chunk_no));
//! CREATE INDEX ... USING hnsw (embedding vector_cosine_ops);  -- `--approximate`
//! CREATE INDEX ... USING gin (tsv);                           -- keyword search
//! ```
//!
//! Rows keep their `row_no` for life: `delete` leaves gaps, `add` numbers on from the largest.

use super::PgLocation;
use crate::chunk::ChunkConfig;
use crate::store::{Manifest, FORMAT};
use crate::{RagError, Result};
use postgres::{Client, GenericClient};

pub const MANIFEST_TABLE: &str = "tasklm_indexes";
/// The full-text configuration of the `tsv` column and of queries.
pub const TEXT_SEARCH_CONFIG: &str = "english";

/// The chunks table of index `name` (names are checked to be `[a-z][a-z0-9_]*`).
pub fn chunks_table(name: &str) -> String {
    format!("tasklm_chunks__{name}")
}

/// Creates the manifest table shared by every index, in a short transaction of its own.
/// `CREATE TABLE IF NOT EXISTS` is not safe against itself (two builds on a fresh database
/// both create the table's row type and one fails on `pg_type`'s unique index), so creators
/// take an advisory lock first; it is released at commit, before the build's long transaction.
pub(crate) fn create_manifest_table(c: &mut Client, loc: &PgLocation) -> Result<()> {
    let err = |e: &postgres::Error| loc.err(&format!("creating table {MANIFEST_TABLE}"), e);
    let mut tx = c.transaction().map_err(|e| err(&e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&"tasklm manifest table"],
    )
    .map_err(|e| err(&e))?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {MANIFEST_TABLE} (
            name text PRIMARY KEY, format integer NOT NULL, version bigint NOT NULL,
            model text NOT NULL, model_path text NOT NULL, dims integer NOT NULL,
            chunk_tokens integer NOT NULL, chunk_overlap integer NOT NULL,
            documents bigint NOT NULL, chunks bigint NOT NULL,
            built_at timestamptz NOT NULL DEFAULT now())"
    ))
    .map_err(|e| err(&e))?;
    tx.commit().map_err(|e| err(&e))
}

/// Creates the chunks table `table` (its search indexes come after the rows).
pub(crate) fn create_chunks_table(
    c: &mut impl GenericClient,
    loc: &PgLocation,
    table: &str,
    dims: usize,
) -> Result<()> {
    c.batch_execute(&format!(
        "CREATE TABLE {table} (
            row_no bigint PRIMARY KEY, doc_id text NOT NULL, chunk_no integer NOT NULL,
            char_start bigint NOT NULL, char_end bigint NOT NULL,
            title text NOT NULL, text text NOT NULL,
            embedding vector({dims}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('{TEXT_SEARCH_CONFIG}', text)) STORED,
            UNIQUE (doc_id, chunk_no))"
    ))
    .map_err(|e| loc.err(&format!("creating table {table}"), &e))
}

/// The HNSW and GIN indexes of `table`, named after `final_table` and `version` (so that a
/// rebuilt table's never clash with the old one's).
pub(crate) fn create_search_indexes(
    c: &mut impl GenericClient,
    loc: &PgLocation,
    table: &str,
    final_table: &str,
    version: u64,
) -> Result<()> {
    let tag = format!("{final_table}_v{version}");
    c.batch_execute(&format!(
        "CREATE INDEX {tag}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops);
         CREATE INDEX {tag}_tsv ON {table} USING gin (tsv);"
    ))
    .map_err(|e| loc.err(&format!("indexing table {table}"), &e))
}

/// The manifest of the index at `loc`, or None when there is none.
pub(crate) fn read_manifest(
    c: &mut impl GenericClient,
    loc: &PgLocation,
) -> Result<Option<Manifest>> {
    let exists = c
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&MANIFEST_TABLE])
        .map_err(|e| loc.err("reading the manifest", &e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let row = c
        .query_opt(
            &format!(
                "SELECT format, version, model, model_path, dims, chunk_tokens, chunk_overlap,
                        documents, chunks FROM {MANIFEST_TABLE} WHERE name = $1"
            ),
            &[&loc.name()],
        )
        .map_err(|e| loc.err("reading the manifest", &e))?;
    let Some(r) = row else { return Ok(None) };
    let count = |i: usize| -> Result<usize> {
        let v: i64 = r.get(i);
        usize::try_from(v).map_err(|_| RagError::Postgres {
            url: loc.redacted().to_string(),
            msg: format!("{MANIFEST_TABLE}: a negative count ({v})"),
        })
    };
    let small = |i: usize| -> Result<usize> {
        let v: i32 = r.get(i);
        usize::try_from(v).map_err(|_| RagError::Postgres {
            url: loc.redacted().to_string(),
            msg: format!("{MANIFEST_TABLE}: a negative size ({v})"),
        })
    };
    let format: i32 = r.get(0);
    let version: i64 = r.get(1);
    if format != FORMAT as i32 {
        return Err(RagError::Postgres {
            url: loc.redacted().to_string(),
            msg: format!("index format {format}, this tasklm reads {FORMAT}"),
        });
    }
    Ok(Some(Manifest {
        format: FORMAT,
        version: version.max(0) as u64,
        model: r.get(2),
        model_path: r.get(3),
        dims: small(4)?,
        chunking: ChunkConfig {
            tokens: small(5)?,
            overlap: small(6)?,
        },
        documents: count(7)?,
        chunks: count(8)?,
        hnsw: true,
        hnsw_min_chunks: 0,
    }))
}

/// Writes `m` as the manifest of the index at `loc`.
pub(crate) fn write_manifest(
    c: &mut impl GenericClient,
    loc: &PgLocation,
    m: &Manifest,
) -> Result<()> {
    let int = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    let big = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    c.execute(
        &format!(
            "INSERT INTO {MANIFEST_TABLE} (name, format, version, model, model_path, dims,
                 chunk_tokens, chunk_overlap, documents, chunks)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (name) DO UPDATE SET format = $2, version = $3, model = $4,
                 model_path = $5, dims = $6, chunk_tokens = $7, chunk_overlap = $8,
                 documents = $9, chunks = $10, built_at = now()"
        ),
        &[
            &loc.name(),
            &(m.format as i32),
            &(m.version as i64),
            &m.model,
            &m.model_path,
            &int(m.dims),
            &int(m.chunking.tokens),
            &int(m.chunking.overlap),
            &big(m.documents),
            &big(m.chunks),
        ],
    )
    .map_err(|e| loc.err("writing the manifest", &e))?;
    Ok(())
}
