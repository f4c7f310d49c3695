//! Entity-level precision, recall and F1 over BIO/IOBES tag sequences, as the `seqeval`
//! package computes them by default (conlleval chunking: an `I-` after `O` or after another
//! type starts an entity; an entity counts only when type, start and end all match).

use std::collections::{BTreeMap, HashSet};

/// One entity: (type, first index, last index) in a tag sequence.
pub type Entity = (String, usize, usize);

fn split(tag: &str) -> (char, &str) {
    let mut chars = tag.chars();
    let t = chars.next().unwrap_or('O');
    let rest = chars.as_str();
    let ty = rest.split_once('-').map_or(rest, |(_, ty)| ty);
    (t, if ty.is_empty() { "_" } else { ty })
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != ty)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

/// The entities of one tag sequence (seqeval's `get_entities`).
pub fn entities(tags: &[impl AsRef<str>]) -> Vec<Entity> {
    let (mut prev_tag, mut prev_type) = ('O', String::new());
    let mut begin = 0;
    let mut out = Vec::new();
    // A trailing `O` closes the last entity.
    let padded = tags.iter().map(|t| t.as_ref()).chain(std::iter::once("O"));
    for (i, tag) in padded.enumerate() {
        let (t, ty) = split(tag);
        if end_of_chunk(prev_tag, t, &prev_type, ty) {
            out.push((prev_type.clone(), begin, i.saturating_sub(1)));
        }
        if start_of_chunk(prev_tag, t, &prev_type, ty) {
            begin = i;
        }
        prev_tag = t;
        prev_type = ty.to_string();
    }
    out
}

/// Precision, recall, F1 and the number of true entities (`support`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

impl Prf {
    fn new(tp: usize, n_pred: usize, n_true: usize) -> Self {
        let div = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (p, r) = (div(tp, n_pred), div(tp, n_true));
        let f1 = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        Self {
            precision: p,
            recall: r,
            f1,
            support: n_true,
        }
    }
}

/// Entity scores: micro-averaged over all types (seqeval's default `f1_score`), and per type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntityScores {
    pub overall: Prf,
    pub per_type: BTreeMap<String, Prf>,
}

/// Scores predicted tag sequences against the true ones, sentence by sentence.
pub fn entity_scores<S: AsRef<str>>(truth: &[Vec<S>], predicted: &[Vec<S>]) -> EntityScores {
    let collect = |seqs: &[Vec<S>]| -> HashSet<(usize, Entity)> {
        seqs.iter()
            .enumerate()
            .flat_map(|(s, tags)| entities(tags).into_iter().map(move |e| (s, e)))
            .collect()
    };
    let (t, p) = (collect(truth), collect(predicted));
    let types: std::collections::BTreeSet<String> =
        t.iter().chain(&p).map(|(_, e)| e.0.clone()).collect();
    let per_type = types
        .into_iter()
        .map(|ty| {
            let of = |set: &HashSet<(usize, Entity)>| -> HashSet<(usize, Entity)> {
                set.iter().filter(|(_, e)| e.0 == ty).cloned().collect()
            };
            let (tt, pp) = (of(&t), of(&p));
            let prf = Prf::new(tt.intersection(&pp).count(), pp.len(), tt.len());
            (ty, prf)
        })
        .collect();
    EntityScores {
        overall: Prf::new(t.intersection(&p).count(), p.len(), t.len()),
        per_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_as_seqeval_docstring() {
        let seq = ["B-PER", "I-PER", "O", "B-LOC"];
        assert_eq!(
            entities(&seq),
            vec![("PER".into(), 0, 1), ("LOC".into(), 3, 3)]
        );
    }

    #[test]
    fn an_i_without_b_starts_an_entity_and_a_type_change_splits() {
        let seq = ["O", "I-ORG", "I-ORG", "I-PER", "B-PER", "I-PER"];
        assert_eq!(
            entities(&seq),
            vec![
                ("ORG".into(), 1, 2),
                ("PER".into(), 3, 3),
                ("PER".into(), 4, 5)
            ]
        );
    }
}
