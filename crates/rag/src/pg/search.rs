//! Searching a Postgres index. Dense: exact by default (a sequential scan ordered by inner
//! product, which the cosine HNSW index cannot serve, then row number), or approximate through
//! the HNSW index (`hnsw.ef_search`); either way the candidates are rescored with tasklm's own
//! dot product, so exact search returns the embedded index's top-k and scores. Keyword:
//! Postgres full-text search (the query's lexemes or-ed, ranked by `ts_rank` normalised by
//! the log of the chunk's length, [`KEYWORD_RANK`]), not BM25.
//! Hybrid: the two fused as for the embedded index (`SearchOptions::fusion`).

use super::schema::{chunks_table, read_manifest, TEXT_SEARCH_CONFIG};
use super::PgLocation;
use crate::dense::top_k;
use crate::search::{fuse, Hit, Mode, SearchOptions, FUSION_DEPTH};
use crate::store::Manifest;
use crate::{RagError, Result};
use pgvector::Vector;
use postgres::{Client, Row};
use serde_json::Value;
use std::collections::HashMap;

/// The keyword ranking. On SQuAD (635 questions, 1,808 chunks, README) recall@1/5/20 was
/// 0.706/0.874/0.957 with `ts_rank(tsv, q, 1)` against 0.268/0.603/0.846 with `ts_rank_cd`
/// (cover density rewards query terms close together, which or-ed questions rarely are).
pub const KEYWORD_RANK: &str = "ts_rank(tsv, q.q, 1)";

/// pgvector's largest `hnsw.ef_search`.
const MAX_EF_SEARCH: usize = 1000;

/// An open Postgres index: a connection and the manifest.
pub struct PgIndex {
    pub loc: PgLocation,
    pub manifest: Manifest,
    client: Client,
    table: String,
}

const COLUMNS: &str = "row_no, doc_id, title, char_start, char_end, text";

impl PgIndex {
    pub fn open(loc: &PgLocation) -> Result<Self> {
        let mut client = loc.connect(false)?;
        let manifest = read_manifest(&mut client, loc)?.ok_or_else(|| RagError::NoPgIndex {
            url: loc.redacted().to_string(),
        })?;
        Ok(Self {
            loc: loc.clone(),
            manifest,
            client,
            table: chunks_table(loc.name()),
        })
    }

    fn hit(&self, r: &Row, score: f32) -> Result<Hit> {
        let row: i64 = r.get(0);
        let pos = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(Hit {
            score,
            doc_id: r.get(1),
            title: r.get(2),
            start: pos(r.get(3)),
            end: pos(r.get(4)),
            chunk: usize::try_from(row).map_err(|_| RagError::Postgres {
                url: self.loc.redacted().to_string(),
                msg: format!("{}: a negative row_no {row}", self.table),
            })?,
            text: r.get(5),
        })
    }

    /// The `k` chunks nearest `query_vector`, best first.
    pub fn dense(
        &mut self,
        query_vector: &[f32],
        k: usize,
        opts: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        if query_vector.len() != self.manifest.dims {
            return Err(RagError::Invalid(format!(
                "a query vector of {} dimensions for an index of {}",
                query_vector.len(),
                self.manifest.dims
            )));
        }
        let q = Vector::from(query_vector.to_vec());
        let t = &self.table;
        let rows = if opts.approximate {
            // The index serves `ORDER BY embedding <=> q LIMIT n` and returns at most
            // ef_search rows.
            let limit = k as i64;
            let ef = opts.ef_search.max(k).min(MAX_EF_SEARCH);
            let sql =
                format!("SELECT {COLUMNS}, embedding FROM {t} ORDER BY embedding <=> $1 LIMIT $2");
            let mut tx = self
                .client
                .transaction()
                .map_err(|e| self.loc.err("starting a transaction", &e))?;
            tx.batch_execute(&format!("SET LOCAL hnsw.ef_search = {ef}"))
                .map_err(|e| self.loc.err("setting hnsw.ef_search", &e))?;
            let rows = tx.query(&sql, &[&q, &limit]);
            let rows = rows.map_err(|e| self.loc.err("dense search", &e))?;
            tx.commit().map_err(|e| self.loc.err("dense search", &e))?;
            rows
        } else {
            // A few more than k, so that float rounding in Postgres's distances cannot push
            // one of the true top k out before rescoring.
            let limit = (2 * k + 16) as i64;
            let sql = format!(
                "SELECT {COLUMNS}, embedding FROM {t} ORDER BY embedding <#> $1, row_no LIMIT $2"
            );
            self.client
                .query(&sql, &[&q, &limit])
                .map_err(|e| self.loc.err("dense search", &e))?
        };
        let mut scored = Vec::with_capacity(rows.len());
        let mut by_row = HashMap::with_capacity(rows.len());
        for r in &rows {
            let v: Vector = r.get(6);
            let score = tasklm_nn::ops::dot(v.as_slice(), query_vector);
            let hit = self.hit(r, score)?;
            let id = u32::try_from(hit.chunk).unwrap_or(u32::MAX);
            scored.push((id, score));
            by_row.insert(id, hit);
        }
        Ok(top_k(scored, k)
            .into_iter()
            .filter_map(|(id, _)| by_row.remove(&id))
            .collect())
    }

    /// The `k` chunks best matching `query` by Postgres full-text search (any of its
    /// lexemes, ranked by [`KEYWORD_RANK`], then row).
    pub fn keyword(&mut self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let sql = format!(
            "SELECT {COLUMNS}, {KEYWORD_RANK} AS score
             FROM {t}, (SELECT replace(plainto_tsquery('{TEXT_SEARCH_CONFIG}', $1)::text, ' & ', ' | ')::tsquery AS q) q
             WHERE tsv @@ q.q ORDER BY score DESC, row_no LIMIT $2",
            t = self.table
        );
        let rows = self
            .client
            .query(&sql, &[&query, &(k as i64)])
            .map_err(|e| self.loc.err("keyword search", &e))?;
        rows.iter()
            .map(|r| self.hit(r, r.get::<_, f32>(6)))
            .collect()
    }

    /// The `k` best chunks for `query` (its embedding in `query_vector`, needed unless `mode`
    /// is BM25, which here is Postgres full-text search).
    pub fn search(
        &mut self,
        query: &str,
        query_vector: Option<&[f32]>,
        k: usize,
        mode: Mode,
        opts: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        let vector = || {
            query_vector
                .ok_or_else(|| RagError::Invalid("dense search needs the query's embedding".into()))
        };
        match mode {
            Mode::Bm25 => self.keyword(query, k),
            Mode::Dense => self.dense(vector()?, k, opts),
            Mode::Hybrid => {
                let depth = FUSION_DEPTH.max(k);
                let keyword = self.keyword(query, depth)?;
                let dense = self.dense(vector()?, depth, opts)?;
                let mut by_row = HashMap::new();
                let lists: Vec<Vec<(u32, f32)>> = [keyword, dense]
                    .into_iter()
                    .map(|hits| {
                        hits.into_iter()
                            .map(|h| {
                                let id = u32::try_from(h.chunk).unwrap_or(u32::MAX);
                                let score = h.score;
                                by_row.insert(id, h);
                                (id, score)
                            })
                            .collect()
                    })
                    .collect();
                Ok(fuse(&lists, k, opts.fusion)
                    .into_iter()
                    .filter_map(|(id, score)| by_row.remove(&id).map(|h| Hit { score, ..h }))
                    .collect())
            }
        }
    }

    /// Bytes of the chunks table with its indexes and TOAST (`pg_total_relation_size`).
    pub fn disk_bytes(&mut self) -> Result<u64> {
        let r = self
            .client
            .query_one(
                "SELECT pg_total_relation_size($1::text::regclass)",
                &[&self.table],
            )
            .map_err(|e| self.loc.err("measuring the table", &e))?;
        Ok(u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
    }

    /// The index's stats as one JSON object (the embedded index's fields, and the table).
    pub fn stats(&mut self) -> Result<Value> {
        let disk = self.disk_bytes()?;
        let mut v = self.manifest.stats(self.loc.redacted().to_string(), disk);
        v["store"] = "postgres".into();
        v["table"] = self.table.clone().into();
        Ok(v)
    }
}
