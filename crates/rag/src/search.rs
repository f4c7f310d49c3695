//! Search: BM25, dense (exact, or HNSW when the index has a graph) and hybrid, which fuses the
//! two rankings by reciprocal rank fusion (Cormack et al. 2009): a chunk scores the sum over
//! the rankings of `1 / (RRF_K + rank)`, ranks from 1, each ranking [`FUSION_DEPTH`] deep.

use crate::dense::{exact_top_k, top_k};
use crate::hnsw::DEFAULT_EF_SEARCH;
use crate::index::Index;
use crate::{RagError, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;

/// The constant of reciprocal rank fusion.
pub const RRF_K: f32 = 60.0;
/// Hits of each ranking that hybrid search fuses (or `k`, when larger).
pub const FUSION_DEPTH: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bm25,
    Dense,
    Hybrid,
}

impl Mode {
    /// Whether the mode embeds the query.
    pub fn needs_vector(self) -> bool {
        self != Mode::Bm25
    }
}

impl FromStr for Mode {
    type Err = RagError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bm25" => Ok(Self::Bm25),
            "dense" => Ok(Self::Dense),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(RagError::Invalid(format!(
                "search mode `{other}`: expected bm25, dense or hybrid"
            ))),
        }
    }
}

/// How dense search runs, where the store offers a choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// Postgres: dense search through the HNSW index rather than exact. (An embedded index
    /// uses its HNSW graph whenever it has one.)
    pub approximate: bool,
    /// Candidates kept during an HNSW search (Postgres's `hnsw.ef_search`), at least `k`.
    pub ef_search: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            approximate: false,
            ef_search: DEFAULT_EF_SEARCH,
        }
    }
}

/// One retrieved chunk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    pub score: f32,
    pub doc_id: String,
    pub title: String,
    /// Character span of the chunk in its document.
    pub start: usize,
    pub end: usize,
    /// The chunk's row in the index.
    pub chunk: usize,
    pub text: String,
}

/// Fuses rankings (each best first) by reciprocal rank; equal scores by row.
pub fn reciprocal_rank_fusion(rankings: &[Vec<(u32, f32)>], k: usize) -> Vec<(u32, f32)> {
    let mut scores: HashMap<u32, f32> = HashMap::new();
    for ranking in rankings {
        for (rank, &(row, _)) in ranking.iter().enumerate() {
            *scores.entry(row).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    top_k(scores.into_iter().collect(), k)
}

impl Index {
    /// The `k` chunks nearest `query_vector`, best first (HNSW when the index has a graph).
    pub fn dense(&self, query_vector: &[f32], k: usize) -> Vec<(u32, f32)> {
        let dims = self.manifest.dims;
        match &self.hnsw {
            Some(g) => g.search(
                &self.vectors,
                dims,
                query_vector,
                k,
                DEFAULT_EF_SEARCH.max(k),
            ),
            None => exact_top_k(&self.vectors, dims, query_vector, k),
        }
    }

    /// The `k` best chunks for `query` (its embedding in `query_vector`, needed unless `mode`
    /// is BM25).
    pub fn search(
        &self,
        query: &str,
        query_vector: Option<&[f32]>,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<Hit>> {
        let vector = || {
            query_vector
                .ok_or_else(|| RagError::Invalid("dense search needs the query's embedding".into()))
        };
        let rows = match mode {
            Mode::Bm25 => self.bm25.search(query, k)?,
            Mode::Dense => self.dense(vector()?, k),
            Mode::Hybrid => {
                let depth = FUSION_DEPTH.max(k);
                let lists = [
                    self.bm25.search(query, depth)?,
                    self.dense(vector()?, depth),
                ];
                reciprocal_rank_fusion(&lists, k)
            }
        };
        rows.into_iter()
            .map(|(row, score)| {
                let c = self.chunks.get(row as usize).ok_or_else(|| {
                    RagError::file(
                        &self.dir,
                        format!("a hit on row {row}, past the last chunk"),
                    )
                })?;
                Ok(Hit {
                    score,
                    doc_id: c.doc_id.clone(),
                    title: c.title.clone(),
                    start: c.start,
                    end: c.end,
                    chunk: row as usize,
                    text: c.text.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement() {
        // Row 7 is second in both rankings (2/62); rows 1 and 2 are first in one each (1/61).
        let a = vec![(1, 9.0), (7, 8.0)];
        let b = vec![(2, 0.9), (7, 0.8)];
        let got = reciprocal_rank_fusion(&[a, b], 3);
        assert_eq!(got[0].0, 7);
        assert!((got[0].1 - 2.0 / 62.0).abs() < 1e-7);
        assert_eq!((got[1].0, got[2].0), (1, 2));
        assert!((got[1].1 - 1.0 / 61.0).abs() < 1e-7);
    }

    #[test]
    fn a_wrong_mode_lists_the_modes() {
        let e = "sparse".parse::<Mode>().unwrap_err().to_string();
        assert!(e.contains("bm25, dense or hybrid"), "{e}");
    }
}
