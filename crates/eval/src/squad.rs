//! SQuAD v1.1 exact match and F1, as the official `evaluate-v1.1.py` computes them: answers are
//! lower-cased, stripped of punctuation and of the articles a/an/the, and split on whitespace;
//! F1 is over the bag of tokens; each question takes its best reference; totals are x100.

use std::collections::HashMap;

/// Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The official `normalize_answer`.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower
        .chars()
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    // `re.sub(r'\b(a|an|the)\b', ' ', text)`: whole words only; a word is a run of `\w`
    // (letters, digits, underscore).
    let mut out = String::with_capacity(no_punc.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punc.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1.0 when the normalised answers are equal.
pub fn exact_match(prediction: &str, truth: &str) -> f64 {
    f64::from(u8::from(
        normalize_answer(prediction) == normalize_answer(truth),
    ))
}

/// Token-bag F1 of the normalised answers.
pub fn f1(prediction: &str, truth: &str) -> f64 {
    let p = normalize_answer(prediction);
    let t = normalize_answer(truth);
    let (pt, tt): (Vec<&str>, Vec<&str>) = (
        p.split_whitespace().collect(),
        t.split_whitespace().collect(),
    );
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for w in &tt {
        *counts.entry(w).or_default() += 1;
    }
    let mut same = 0usize;
    for w in &pt {
        if let Some(c) = counts.get_mut(w) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / tt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The best score of `prediction` over the references.
pub fn best_over(metric: fn(&str, &str) -> f64, prediction: &str, truths: &[String]) -> f64 {
    truths
        .iter()
        .map(|t| metric(prediction, t))
        .fold(0.0, f64::max)
}

/// (exact match, F1), each x100, over questions with their predictions and references.
pub fn squad_scores(predictions: &[String], references: &[Vec<String>]) -> (f64, f64) {
    let n = predictions.len().min(references.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let (mut em, mut f) = (0.0, 0.0);
    for (p, r) in predictions.iter().zip(references) {
        em += best_over(exact_match, p, r);
        f += best_over(f1, p, r);
    }
    (100.0 * em / n as f64, 100.0 * f / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_as_the_official_script() {
        assert_eq!(normalize_answer("The  Eiffel Tower!"), "eiffel tower");
        assert_eq!(normalize_answer("an apple, a pear"), "apple pear");
        assert_eq!(normalize_answer("Theatre"), "theatre", "whole words only");
        assert_eq!(
            f1("the cat sat", "a cat sat down"),
            2.0 * (1.0 * 2.0 / 3.0) / (1.0 + 2.0 / 3.0)
        );
    }
}
