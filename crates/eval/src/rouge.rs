//! ROUGE-1, ROUGE-2 and ROUGE-L as the `rouge-score` package (0.1.2) computes them with
//! `use_stemmer=True`: lower-case, every run of characters outside `[a-z0-9]` becomes a space,
//! tokens longer than 3 characters are Porter-stemmed (NLTK's stemmer); n-gram overlap and
//! the longest common subsequence give precision, recall and F-measure. With several
//! references, each type takes the reference with the best F-measure.

use crate::porter;
use std::collections::HashMap;

/// Precision, recall and F-measure of one type.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one prediction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rouge {
    pub rouge1: RougeScore,
    pub rouge2: RougeScore,
    pub rouge_l: RougeScore,
}

/// rouge-score's default tokenizer with stemming.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let spaced: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                ' '
            }
        })
        .collect();
    spaced
        .split_whitespace()
        .map(|t| {
            if t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

fn fmeasure(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

fn ngram_score(target: &[String], pred: &[String], n: usize) -> RougeScore {
    let grams = |t: &[String]| -> HashMap<Vec<String>, usize> {
        let mut m = HashMap::new();
        for w in t.windows(n) {
            *m.entry(w.to_vec()).or_insert(0) += 1;
        }
        m
    };
    let (tg, pg) = (grams(target), grams(pred));
    let overlap: usize = tg
        .iter()
        .map(|(g, &c)| c.min(pg.get(g).copied().unwrap_or(0)))
        .sum();
    let (tc, pc): (usize, usize) = (tg.values().sum(), pg.values().sum());
    let precision = overlap as f64 / pc.max(1) as f64;
    let recall = overlap as f64 / tc.max(1) as f64;
    RougeScore {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

fn lcs_score(target: &[String], pred: &[String]) -> RougeScore {
    if target.is_empty() || pred.is_empty() {
        return RougeScore::default();
    }
    let mut prev = vec![0usize; pred.len() + 1];
    for t in target {
        let mut cur = vec![0usize; pred.len() + 1];
        for (j, p) in pred.iter().enumerate() {
            cur[j + 1] = if t == p {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        prev = cur;
    }
    let lcs = prev[pred.len()] as f64;
    let (precision, recall) = (lcs / pred.len() as f64, lcs / target.len() as f64);
    RougeScore {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

/// ROUGE of `prediction` against one `target`.
pub fn rouge(target: &str, prediction: &str) -> Rouge {
    let (t, p) = (rouge_tokens(target), rouge_tokens(prediction));
    Rouge {
        rouge1: ngram_score(&t, &p, 1),
        rouge2: ngram_score(&t, &p, 2),
        rouge_l: lcs_score(&t, &p),
    }
}

/// ROUGE against several targets: per type, the target with the highest F-measure (the
/// first on ties, as numpy's argmax).
pub fn rouge_multi(targets: &[String], prediction: &str) -> Rouge {
    let all: Vec<Rouge> = targets.iter().map(|t| rouge(t, prediction)).collect();
    let best = |f: fn(&Rouge) -> RougeScore| -> RougeScore {
        all.iter()
            .map(f)
            .fold(None::<RougeScore>, |b, s| match b {
                Some(b) if b.fmeasure >= s.fmeasure => Some(b),
                _ => Some(s),
            })
            .unwrap_or_default()
    };
    Rouge {
        rouge1: best(|r| r.rouge1),
        rouge2: best(|r| r.rouge2),
        rouge_l: best(|r| r.rouge_l),
    }
}

/// Mean F-measures (x100) of ROUGE-1, ROUGE-2 and ROUGE-L over a corpus.
pub fn mean_rouge(predictions: &[String], references: &[Vec<String>]) -> (f64, f64, f64) {
    let n = predictions.len().min(references.len());
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
    for (p, r) in predictions.iter().zip(references) {
        let s = rouge_multi(r, p);
        a += s.rouge1.fmeasure;
        b += s.rouge2.fmeasure;
        c += s.rouge_l.fmeasure;
    }
    let k = 100.0 / n as f64;
    (a * k, b * k, c * k)
}
