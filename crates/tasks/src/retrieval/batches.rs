//! Batches that never repeat a text, as sentence-transformers' `NoDuplicatesBatchSampler`
//! makes them: walk the shuffled order, put each example into the batch unless one of its
//! texts (query, positive or negative) is already there (then it waits for a later batch),
//! close the batch at `batch_size`, and begin again from the first example still waiting. A
//! pass ends with smaller batches when the examples left share their texts. Every example is
//! in exactly one batch. With in-batch negatives this matters: two SQuAD questions of one
//! paragraph in a batch would make that paragraph both the positive and a negative.

use std::collections::HashSet;

/// The batches of `order` (indices into `texts`), each at most `batch_size` long and without
/// a text twice; `texts(i)` gives example i's texts.
pub fn no_duplicate_batches<'a>(
    order: &[usize],
    batch_size: usize,
    texts: impl Fn(usize) -> Vec<&'a str>,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut waiting: Vec<usize> = order.to_vec();
    let mut out = Vec::new();
    while !waiting.is_empty() {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut batch = Vec::with_capacity(batch_size);
        let mut rest = Vec::with_capacity(waiting.len());
        for (pos, &i) in waiting.iter().enumerate() {
            let t = texts(i);
            if t.iter().any(|s| seen.contains(s)) {
                rest.push(i);
                continue;
            }
            batch.push(i);
            if batch.len() == batch_size {
                rest.extend_from_slice(&waiting[pos + 1..]);
                break;
            }
            seen.extend(t);
        }
        out.push(batch);
        waiting = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_batch_holds_a_text_twice_and_every_example_is_used_once() {
        // 12 questions over 4 paragraphs (3 each), as SQuAD has them.
        let ex: Vec<(String, String)> = (0..12)
            .map(|i| (format!("q{i}"), format!("paragraph {}", i % 4)))
            .collect();
        let order: Vec<usize> = (0..12).rev().collect();
        let batches = no_duplicate_batches(&order, 3, |i| vec![&ex[i].0, &ex[i].1]);
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..12).collect::<Vec<_>>(),
            "each example exactly once"
        );
        for b in &batches {
            assert!(b.len() <= 3);
            let mut p: Vec<&str> = b.iter().map(|&i| ex[i].1.as_str()).collect();
            p.sort_unstable();
            p.dedup();
            assert_eq!(p.len(), b.len(), "a repeated positive in {b:?}");
        }
        // The first batch takes the order's first examples whose paragraphs differ.
        assert_eq!(batches[0], [11, 10, 9]);
        assert_eq!(batches[1], [8, 7, 6], "8 shares no paragraph with 7 and 6");
    }

    #[test]
    fn examples_that_share_a_text_end_in_smaller_batches() {
        let ex = ["same", "same", "same", "other"];
        let batches = no_duplicate_batches(&[0, 1, 2, 3], 2, |i| vec![ex[i]]);
        assert_eq!(batches, vec![vec![0, 3], vec![1], vec![2]]);
    }

    #[test]
    fn a_query_equal_to_another_examples_positive_is_a_duplicate_too() {
        let ex = [("a", "b"), ("b", "c"), ("d", "e")];
        let batches = no_duplicate_batches(&[0, 1, 2], 3, |i| vec![ex[i].0, ex[i].1]);
        assert_eq!(batches, vec![vec![0, 2], vec![1]]);
    }
}
