//! Writing a Postgres index: `build` (a new table filled, indexed and swapped in), `add` and
//! `delete`, each one transaction (a failed or killed one leaves the previous contents), one
//! writer per index at a time (an advisory lock).

use super::schema::{self, chunks_table, read_manifest, write_manifest};
use super::PgLocation;
use crate::build::{ingest, ChunkSink, EmbeddingModel};
use crate::chunk::Chunk;
use crate::index::check_model;
use crate::store::{Manifest, FORMAT};
use crate::{BuildOptions, RagError, Result};
use pgvector::Vector;
use postgres::{Client, GenericClient, Statement, Transaction};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Inserts embedded chunks into a chunks table inside a transaction.
struct PgWriter<'a, 't> {
    tx: &'a mut Transaction<'t>,
    loc: &'a PgLocation,
    insert: Statement,
    /// SELECT of one chunk of a document, when the table held rows before.
    lookup: Option<Statement>,
    next_row: i64,
    rows: usize,
    /// Chunks pushed so far per document (the next one's `chunk_no`).
    chunk_nos: HashMap<String, i32>,
}

impl<'a, 't> PgWriter<'a, 't> {
    fn new(
        tx: &'a mut Transaction<'t>,
        loc: &'a PgLocation,
        table: &str,
        next_row: i64,
    ) -> Result<Self> {
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} (row_no, doc_id, chunk_no, char_start, char_end, title, text, embedding)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .map_err(|e| loc.err(&format!("preparing the insert into {table}"), &e))?;
        let lookup = if next_row > 0 {
            Some(
                tx.prepare(&format!("SELECT 1 FROM {table} WHERE doc_id = $1 LIMIT 1"))
                    .map_err(|e| loc.err(&format!("preparing a lookup in {table}"), &e))?,
            )
        } else {
            None
        };
        Ok(Self {
            tx,
            loc,
            insert,
            lookup,
            next_row,
            rows: 0,
            chunk_nos: HashMap::new(),
        })
    }
}

impl ChunkSink for PgWriter<'_, '_> {
    fn has_doc(&mut self, id: &str) -> Result<bool> {
        if self.chunk_nos.contains_key(id) {
            return Ok(true);
        }
        let Some(lookup) = &self.lookup else {
            return Ok(false);
        };
        let row = self
            .tx
            .query_opt(lookup, &[&id])
            .map_err(|e| self.loc.err("looking a document up", &e))?;
        Ok(row.is_some())
    }

    fn push(&mut self, chunk: &Chunk, vector: &[f32]) -> Result<()> {
        let no = self.chunk_nos.entry(chunk.doc_id.clone()).or_insert(0);
        let span = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let embedding = Vector::from(vector.to_vec());
        self.tx
            .execute(
                &self.insert,
                &[
                    &self.next_row,
                    &chunk.doc_id,
                    &*no,
                    &span(chunk.start),
                    &span(chunk.end),
                    &chunk.title,
                    &chunk.text,
                    &embedding,
                ],
            )
            .map_err(|e| {
                self.loc
                    .err(&format!("inserting a chunk of `{}`", chunk.doc_id), &e)
            })?;
        *no += 1;
        self.next_row += 1;
        self.rows += 1;
        Ok(())
    }
}

fn begin<'c>(client: &'c mut Client, loc: &PgLocation) -> Result<Transaction<'c>> {
    let mut tx = client
        .transaction()
        .map_err(|e| loc.err("starting a transaction", &e))?;
    let key = format!("tasklm index {}", loc.name());
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])
        .map_err(|e| loc.err("locking the index", &e))?;
    Ok(tx)
}

fn commit(tx: Transaction<'_>, loc: &PgLocation) -> Result<()> {
    tx.commit().map_err(|e| loc.err("committing", &e))
}

/// The manifest of an existing index (NoPgIndex otherwise).
fn existing(c: &mut impl GenericClient, loc: &PgLocation) -> Result<Manifest> {
    read_manifest(c, loc)?.ok_or_else(|| RagError::NoPgIndex {
        url: loc.redacted().to_string(),
    })
}

/// Chunks and distinct documents of `table`.
fn counts(c: &mut impl GenericClient, loc: &PgLocation, table: &str) -> Result<(usize, usize)> {
    let r = c
        .query_one(
            &format!("SELECT count(*), count(DISTINCT doc_id) FROM {table}"),
            &[],
        )
        .map_err(|e| loc.err(&format!("counting {table}"), &e))?;
    let n = |i: usize| usize::try_from(r.get::<_, i64>(i)).unwrap_or(0);
    Ok((n(0), n(1)))
}

/// The model check against a Postgres index's manifest (WrongModel names the URL).
pub(crate) fn check_pg_model(loc: &PgLocation, m: &Manifest, model: &EmbeddingModel) -> Result<()> {
    check_model(&PathBuf::from(loc.redacted()), m, &model.spec, model.path())
}

/// Builds an index of `docs` at `loc`: a new one, or one replacing the index there, swapped
/// in at commit (readers see the old rows until then).
pub fn build(
    model: &EmbeddingModel,
    docs: &Path,
    loc: &PgLocation,
    opts: BuildOptions,
) -> Result<Manifest> {
    let chunking = opts
        .chunking
        .capped(model.embedder.max_len.saturating_sub(2))?;
    let dims = model.embedder.dims;
    let mut client = loc.connect(true)?;
    schema::create_manifest_table(&mut client, loc)?;
    let mut tx = begin(&mut client, loc)?;
    let version = read_manifest(&mut tx, loc)?.map_or(1, |m| m.version + 1);
    let table = chunks_table(loc.name());
    let fresh = format!("{table}_build");
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {fresh}; SET LOCAL maintenance_work_mem = '512MB'"
    ))
    .map_err(|e| loc.err("preparing the build", &e))?;
    schema::create_chunks_table(&mut tx, loc, &fresh, dims)?;
    let rows = {
        let mut w = PgWriter::new(&mut tx, loc, &fresh, 0)?;
        ingest(&mut w, model, docs, chunking, opts.batch)?;
        w.rows
    };
    if rows == 0 {
        return Err(RagError::file(docs, "no documents"));
    }
    schema::create_search_indexes(&mut tx, loc, &fresh, &table, version)?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; ALTER TABLE {fresh} RENAME TO {table}"
    ))
    .map_err(|e| loc.err(&format!("swapping {fresh} in for {table}"), &e))?;
    let (chunks, documents) = counts(&mut tx, loc, &table)?;
    let manifest = Manifest {
        format: FORMAT,
        version,
        model: model.spec.clone(),
        model_path: model.path().display().to_string(),
        dims,
        chunking,
        chunks,
        documents,
        hnsw: true,
        hnsw_min_chunks: 0,
    };
    write_manifest(&mut tx, loc, &manifest)?;
    commit(tx, loc)?;
    Ok(manifest)
}

/// Adds the documents of `docs` to the index at `loc` (with the model it was built with).
pub fn add(
    loc: &PgLocation,
    model: &EmbeddingModel,
    docs: &Path,
    batch: usize,
) -> Result<Manifest> {
    let mut client = loc.connect(false)?;
    let mut tx = begin(&mut client, loc)?;
    let mut manifest = existing(&mut tx, loc)?;
    check_pg_model(loc, &manifest, model)?;
    let table = chunks_table(loc.name());
    let next: i64 = tx
        .query_one(
            &format!("SELECT coalesce(max(row_no) + 1, 0) FROM {table}"),
            &[],
        )
        .map_err(|e| loc.err(&format!("reading {table}"), &e))?
        .get(0);
    {
        let mut w = PgWriter::new(&mut tx, loc, &table, next)?;
        ingest(&mut w, model, docs, manifest.chunking, batch)?;
    }
    (manifest.chunks, manifest.documents) = counts(&mut tx, loc, &table)?;
    manifest.version += 1;
    write_manifest(&mut tx, loc, &manifest)?;
    commit(tx, loc)?;
    Ok(manifest)
}

/// Removes the documents `ids` from the index at `loc`; an id it does not hold is an error
/// and nothing is changed.
pub fn delete(loc: &PgLocation, ids: &[String]) -> Result<Manifest> {
    let mut client = loc.connect(false)?;
    let mut tx = begin(&mut client, loc)?;
    let mut manifest = existing(&mut tx, loc)?;
    let table = chunks_table(loc.name());
    let held: HashSet<String> = tx
        .query(
            &format!("SELECT DISTINCT doc_id FROM {table} WHERE doc_id = ANY($1)"),
            &[&ids],
        )
        .map_err(|e| loc.err(&format!("reading {table}"), &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !held.contains(*id))
        .collect();
    if !missing.is_empty() {
        return Err(RagError::Invalid(format!(
            "index {}: no document with id {}",
            loc.redacted(),
            missing.join(", ")
        )));
    }
    tx.execute(
        &format!("DELETE FROM {table} WHERE doc_id = ANY($1)"),
        &[&ids],
    )
    .map_err(|e| loc.err(&format!("deleting from {table}"), &e))?;
    (manifest.chunks, manifest.documents) = counts(&mut tx, loc, &table)?;
    manifest.version += 1;
    write_manifest(&mut tx, loc, &manifest)?;
    commit(tx, loc)?;
    Ok(manifest)
}

/// Removes the index at `loc` (its table and manifest row); false when there was none.
pub fn drop_index(loc: &PgLocation) -> Result<bool> {
    let mut client = loc.connect(false)?;
    let mut tx = begin(&mut client, loc)?;
    let had = read_manifest(&mut tx, loc)?.is_some();
    let table = chunks_table(loc.name());
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}, {table}_build"))
        .map_err(|e| loc.err(&format!("dropping {table}"), &e))?;
    if had {
        tx.execute(
            &format!("DELETE FROM {} WHERE name = $1", schema::MANIFEST_TABLE),
            &[&loc.name()],
        )
        .map_err(|e| loc.err("removing the manifest", &e))?;
    }
    commit(tx, loc)?;
    Ok(had)
}
