//! Accuracy and macro-F1, as scikit-learn's `accuracy_score` and
//! `f1_score(average="macro")` compute them (a class with no predicted and no true example
//! gets F1 0 only when it appears in `labels`; classes are those of `truth` and `predicted`).

use std::collections::BTreeSet;

/// Fraction of positions where `predicted` equals `truth` (0 for empty input).
pub fn accuracy<T: PartialEq>(truth: &[T], predicted: &[T]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let right = truth.iter().zip(predicted).filter(|(a, b)| a == b).count();
    right as f64 / truth.len() as f64
}

/// Unweighted mean over classes of F1 = 2PR / (P + R), with P or R of 0 when undefined
/// (scikit-learn's `zero_division=0`), over the classes present in either list.
pub fn macro_f1<T: Ord + Clone>(truth: &[T], predicted: &[T]) -> f64 {
    let classes: BTreeSet<T> = truth.iter().chain(predicted).cloned().collect();
    if classes.is_empty() {
        return 0.0;
    }
    let mut sum = 0.0;
    for c in &classes {
        let tp = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| *t == c && *p == c)
            .count() as f64;
        let pred = predicted.iter().filter(|p| *p == c).count() as f64;
        let real = truth.iter().filter(|t| *t == c).count() as f64;
        let (p, r) = (
            if pred > 0.0 { tp / pred } else { 0.0 },
            if real > 0.0 { tp / real } else { 0.0 },
        );
        sum += if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
    }
    sum / classes.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by scikit-learn 1.9.1:
    //   accuracy_score([0,1,2,0,1,2], [0,2,1,0,0,1]) = 0.3333333333333333
    //   f1_score([0,1,2,0,1,2], [0,2,1,0,0,1], average="macro") = 0.26666666666666666
    #[test]
    fn matches_scikit_learn_on_a_three_class_example() {
        let truth = [0, 1, 2, 0, 1, 2];
        let pred = [0, 2, 1, 0, 0, 1];
        assert!((accuracy(&truth, &pred) - 1.0 / 3.0).abs() < 1e-12);
        assert!((macro_f1(&truth, &pred) - 0.26666666666666666).abs() < 1e-12);
    }

    #[test]
    fn perfect_and_degenerate_cases() {
        assert_eq!(accuracy(&["a", "b"], &["a", "b"]), 1.0);
        assert_eq!(macro_f1(&["a", "b"], &["a", "b"]), 1.0);
        // Predicting one class for everything: F1 of the other class is 0
        // (scikit-learn: f1_score([1,1,0,0], [1,1,1,1], average="macro") = 0.3333333333333333).
        let f = macro_f1(&[1, 1, 0, 0], &[1, 1, 1, 1]);
        assert!((f - (2.0 / 3.0) / 2.0).abs() < 1e-12, "{f}");
        assert_eq!(accuracy::<u8>(&[], &[]), 0.0);
    }
}
