//! Approximate dense search: a hierarchical navigable small world graph (Malkov & Yashunin,
//! "Efficient and robust approximate nearest neighbor search using HNSW graphs", 2016;
//! Algorithms 1-4, with the neighbour-selection heuristic and pruned connections kept), over
//! the dot product of L2-normalised vectors. Built deterministically from a seed.

use crate::dense::{top_k, OrdF32};
use crate::{RagError, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use tasklm_nn::ops::dot;

/// How the graph is built and searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node above level 0 (twice as many at level 0).
    pub m: usize,
    /// Candidates kept while inserting.
    pub ef_construction: usize,
    /// Seed of the level draws.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            seed: 0x5eed,
        }
    }
}

/// Candidates kept while searching, at least `k`.
pub const DEFAULT_EF_SEARCH: usize = 100;

const MAGIC: &[u8; 8] = b"TLHNSW01";

/// The graph: `links[node][level]` are a node's neighbours at each of its levels.
#[derive(Clone, Debug, PartialEq)]
pub struct Hnsw {
    m: usize,
    entry: u32,
    links: Vec<Vec<Vec<u32>>>,
}

/// Nodes seen in one search, reset in O(1) by a new stamp.
struct Visited {
    stamp: u32,
    seen: Vec<u32>,
}

impl Visited {
    fn new(n: usize) -> Self {
        Self {
            stamp: 0,
            seen: vec![0; n],
        }
    }
    fn reset(&mut self, n: usize) {
        self.seen.resize(n, 0);
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.fill(0);
            self.stamp = 1;
        }
    }
    /// True the first time a node is seen since the reset.
    fn first(&mut self, i: u32) -> bool {
        let s = &mut self.seen[i as usize];
        let fresh = *s != self.stamp;
        *s = self.stamp;
        fresh
    }
}

struct Graph<'a> {
    vectors: &'a [f32],
    dims: usize,
}

impl Graph<'_> {
    fn row(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }
    fn sim(&self, q: &[f32], i: u32) -> f32 {
        dot(q, self.row(i))
    }
}

impl Hnsw {
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    fn max_level(&self) -> usize {
        self.links
            .get(self.entry as usize)
            .map_or(0, |l| l.len().saturating_sub(1))
    }

    /// The graph over every row of `vectors` (row-major, `dims` each), inserted in order.
    pub fn build(vectors: &[f32], dims: usize, params: HnswParams) -> Self {
        let n = vectors.len().checked_div(dims).unwrap_or(0);
        let g = Graph { vectors, dims };
        let m = params.m.max(2);
        let mut h = Self {
            m,
            entry: 0,
            links: Vec::with_capacity(n),
        };
        let ml = 1.0 / (m as f64).ln();
        let mut rng = params.seed | 1;
        let mut visited = Visited::new(n);
        for q in 0..n as u32 {
            // xorshift64*, a uniform draw in (0, 1], then the level -ln(u) * mL.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let u = ((rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 1.0)
                / (1u64 << 53) as f64;
            let level = ((-u.ln() * ml) as usize).min(16);
            h.insert(&g, q, level, params.ef_construction.max(m), &mut visited);
        }
        h
    }

    fn insert(&mut self, g: &Graph, q: u32, level: usize, ef: usize, visited: &mut Visited) {
        self.links.push(vec![Vec::new(); level + 1]);
        if q == 0 {
            self.entry = 0;
            return;
        }
        let qv = g.row(q);
        let top = self.max_level();
        let mut eps = vec![(g.sim(qv, self.entry), self.entry)];
        for lev in (level + 1..=top).rev() {
            eps = self.search_layer(g, qv, &eps, 1, lev, visited);
        }
        for lev in (0..=level.min(top)).rev() {
            let found = self.search_layer(g, qv, &eps, ef, lev, visited);
            let cap = self.cap(lev);
            let neighbours = select(g, &found, cap);
            for &(_, n) in &neighbours {
                let list = &mut self.links[n as usize][lev];
                list.push(q);
                if list.len() > cap {
                    let nv = g.row(n);
                    let mut scored: Vec<(f32, u32)> =
                        list.iter().map(|&x| (g.sim(nv, x), x)).collect();
                    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                    *list = select(g, &scored, cap).into_iter().map(|p| p.1).collect();
                }
            }
            self.links[q as usize][lev] = neighbours.iter().map(|p| p.1).collect();
            eps = found;
        }
        if level > top {
            self.entry = q;
        }
    }

    fn cap(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// The `ef` nodes nearest `q` at `level` found from `eps`, best first.
    fn search_layer(
        &self,
        g: &Graph,
        q: &[f32],
        eps: &[(f32, u32)],
        ef: usize,
        level: usize,
        visited: &mut Visited,
    ) -> Vec<(f32, u32)> {
        visited.reset(self.links.len());
        let mut candidates: BinaryHeap<(OrdF32, u32)> = BinaryHeap::new();
        let mut best: BinaryHeap<Reverse<(OrdF32, u32)>> = BinaryHeap::new();
        for &(s, e) in eps {
            if visited.first(e) {
                candidates.push((OrdF32(s), e));
                best.push(Reverse((OrdF32(s), e)));
            }
        }
        while best.len() > ef {
            best.pop();
        }
        while let Some((OrdF32(s), c)) = candidates.pop() {
            let worst = best.peek().map_or(f32::NEG_INFINITY, |r| (r.0).0 .0);
            if s < worst && best.len() >= ef {
                break;
            }
            let Some(neighbours) = self.links[c as usize].get(level) else {
                continue;
            };
            for &n in neighbours {
                if !visited.first(n) {
                    continue;
                }
                let sn = g.sim(q, n);
                let worst = best.peek().map_or(f32::NEG_INFINITY, |r| (r.0).0 .0);
                if best.len() < ef || sn > worst {
                    candidates.push((OrdF32(sn), n));
                    best.push(Reverse((OrdF32(sn), n)));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        let mut out: Vec<(f32, u32)> = best.into_iter().map(|r| ((r.0).0 .0, (r.0).1)).collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out
    }

    /// The `k` rows nearest `query` found with `ef` candidates, best first.
    pub fn search(
        &self,
        vectors: &[f32],
        dims: usize,
        query: &[f32],
        k: usize,
        ef: usize,
    ) -> Vec<(u32, f32)> {
        if self.links.is_empty() {
            return Vec::new();
        }
        let g = Graph { vectors, dims };
        let mut visited = Visited::new(self.links.len());
        let mut eps = vec![(g.sim(query, self.entry), self.entry)];
        for lev in (1..=self.max_level()).rev() {
            eps = self.search_layer(&g, query, &eps, 1, lev, &mut visited);
        }
        let found = self.search_layer(&g, query, &eps, ef.max(k), 0, &mut visited);
        top_k(found.into_iter().map(|(s, i)| (i, s)).collect(), k)
    }

    /// The graph as bytes: magic, node count, m, entry, then each node's levels and links.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for v in [self.links.len() as u64, self.m as u64, self.entry as u64] {
            out.extend(v.to_le_bytes());
        }
        for node in &self.links {
            out.push(node.len() as u8);
            for level in node {
                out.extend((level.len() as u32).to_le_bytes());
                for &n in level {
                    out.extend(n.to_le_bytes());
                }
            }
        }
        out
    }

    /// Reads [`Hnsw::to_bytes`] back, checking every count and link against `nodes`.
    pub fn from_bytes(bytes: &[u8], nodes: usize, path: &Path) -> Result<Self> {
        let bad = |what: &str| RagError::file(path, format!("corrupt HNSW graph: {what}"));
        let mut r = Reader { bytes, at: 0 };
        if r.take(8).ok_or_else(|| bad("no header"))? != MAGIC {
            return Err(bad("wrong magic"));
        }
        let mut word = || r.u64().ok_or_else(|| bad("truncated header"));
        let (n, m, entry) = (word()? as usize, word()? as usize, word()? as usize);
        if n != nodes || (n > 0 && entry >= n) {
            return Err(bad(&format!(
                "{n} nodes (entry {entry}) for {nodes} vectors"
            )));
        }
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            let levels = r.take(1).ok_or_else(|| bad("truncated"))?[0] as usize;
            let mut node = Vec::with_capacity(levels);
            for _ in 0..levels {
                let count = r.u32().ok_or_else(|| bad("truncated"))? as usize;
                let mut level = Vec::with_capacity(count.min(4 * m + 1));
                for _ in 0..count {
                    let id = r.u32().ok_or_else(|| bad("truncated"))?;
                    if id as usize >= n {
                        return Err(bad("a link past the last node"));
                    }
                    level.push(id);
                }
                node.push(level);
            }
            links.push(node);
        }
        if r.at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            m,
            entry: entry as u32,
            links,
        })
    }
}

/// Up to `cap` of `candidates` (best first): each kept only if nearer the query than any
/// already kept (the heuristic keeps links that point different ways), then the nearest
/// pruned ones until `cap`.
fn select(g: &Graph, candidates: &[(f32, u32)], cap: usize) -> Vec<(f32, u32)> {
    let mut kept: Vec<(f32, u32)> = Vec::with_capacity(cap);
    let mut pruned = Vec::new();
    for &(s, c) in candidates {
        if kept.len() == cap {
            break;
        }
        let cv = g.row(c);
        if kept.iter().all(|&(_, k)| g.sim(cv, k) < s) {
            kept.push((s, c));
        } else {
            pruned.push((s, c));
        }
    }
    let room = cap - kept.len();
    kept.extend(pruned.into_iter().take(room));
    kept
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}
