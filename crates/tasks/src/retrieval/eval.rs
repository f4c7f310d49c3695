//! Ranking metrics of a retriever on pairs: every query against every distinct positive of
//! the data, by cosine similarity; recall@k (the query's positive among the first k) and
//! MRR@10.

use super::model::Retriever;
use super::pairs::Pair;
use crate::Result;
use candle_core::Tensor;
use std::collections::HashMap;
use tasklm_train::trainer::Metrics;

/// Texts embedded in one forward pass.
pub const EMBED_BATCH: usize = 32;

/// Unit vectors (N, H) of `texts`, in batches, dropout off.
pub fn embed_all(model: &Retriever, texts: &[&str]) -> Result<Tensor> {
    let mut parts = Vec::new();
    for chunk in texts.chunks(EMBED_BATCH) {
        let rows = chunk
            .iter()
            .map(|t| Ok(model.encode(t)?.0))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let v = model.embed(&refs, false)?.detach();
        parts.push(tasklm_train::l2_normalize(&v)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Where each query's gold candidate ranks (0 = first) in `scores` (Q, D); ties count against it.
pub fn gold_ranks(scores: &[Vec<f32>], gold: &[usize]) -> Vec<usize> {
    scores
        .iter()
        .zip(gold)
        .map(|(row, &g)| row.iter().filter(|&&s| s >= row[g]).count() - 1)
        .collect()
}

/// recall@1/5/20 and MRR@10 from gold ranks.
pub fn rank_metrics(ranks: &[usize]) -> Metrics {
    let n = ranks.len().max(1) as f64;
    let recall = |k: usize| ranks.iter().filter(|&&r| r < k).count() as f64 / n;
    let mrr = ranks
        .iter()
        .filter(|&&r| r < 10)
        .map(|&r| 1.0 / (r + 1) as f64)
        .sum::<f64>()
        / n;
    vec![
        ("recall@1".into(), recall(1)),
        ("recall@5".into(), recall(5)),
        ("recall@20".into(), recall(20)),
        ("mrr@10".into(), mrr),
    ]
}

/// The metrics of `model` on `pairs`.
pub fn ranking_metrics(model: &Retriever, pairs: &[Pair]) -> Result<Metrics> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut docs: Vec<&str> = Vec::new();
    let gold: Vec<usize> = pairs
        .iter()
        .map(|p| {
            *index.entry(p.positive.as_str()).or_insert_with(|| {
                docs.push(p.positive.as_str());
                docs.len() - 1
            })
        })
        .collect();
    let queries: Vec<&str> = pairs.iter().map(|p| p.query.as_str()).collect();
    let q = embed_all(model, &queries)?;
    let d = embed_all(model, &docs)?;
    let scores = q.matmul(&d.t()?)?.to_vec2::<f32>()?;
    Ok(rank_metrics(&gold_ranks(&scores, &gold)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_recall() {
        let scores = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.5, 0.4, 0.6],
            vec![0.3, 0.3, 0.1],
        ];
        let ranks = gold_ranks(&scores, &[0, 1, 1]);
        assert_eq!(ranks, [0, 2, 1], "a tie ranks the gold after the other");
        let m = rank_metrics(&ranks);
        assert_eq!(m[0], ("recall@1".to_string(), 1.0 / 3.0));
        assert_eq!(m[1].1, 1.0);
        assert!((m[3].1 - (1.0 + 1.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
    }
}
