//! Exact dense search: one dot product per stored vector (vectors are L2-normalised, so the
//! dot product is the cosine), on `nn`'s SIMD kernel, in parallel over rows.

use rayon::prelude::*;
use std::cmp::Ordering;

/// Rows a rayon task scores at once.
const ROWS_PER_TASK: usize = 1024;

/// The `k` best `(row, score)` pairs, best first; equal scores by row, lowest first.
pub fn top_k(mut scored: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k == 0 {
        return Vec::new();
    }
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, order);
        scored.truncate(k);
    }
    scored.sort_by(order);
    scored
}

/// The `k` rows of `vectors` (row-major, `dims` each) with the highest dot product with `query`.
pub fn exact_top_k(vectors: &[f32], dims: usize, query: &[f32], k: usize) -> Vec<(u32, f32)> {
    if dims == 0 {
        return Vec::new();
    }
    let scores: Vec<f32> = vectors
        .par_chunks(dims * ROWS_PER_TASK)
        .flat_map_iter(|block| {
            block
                .chunks_exact(dims)
                .map(|row| tasklm_nn::ops::dot(row, query))
        })
        .collect();
    let scored = scores
        .into_iter()
        .enumerate()
        .map(|(i, s)| (i as u32, s))
        .collect();
    top_k(scored, k)
}

/// An `f32` ordered by `total_cmp`, for heaps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct OrdF32(pub f32);

impl Eq for OrdF32 {}

impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_row() {
        let got = top_k(vec![(0, 0.5), (1, 0.9), (2, 0.5), (3, -1.0)], 3);
        assert_eq!(got, vec![(1, 0.9), (0, 0.5), (2, 0.5)]);
    }

    #[test]
    fn exact_search_finds_the_query_itself() {
        let dims = 3;
        let vectors = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.6, 0.8, 0.0];
        let got = exact_top_k(&vectors, dims, &[0.0, 1.0, 0.0], 2);
        assert_eq!(got[0], (1, 1.0));
        assert_eq!(got[1].0, 2);
        assert!((got[1].1 - 0.8).abs() < 1e-6);
    }
}
