//! Scores for generated answers: exact match of a final number (GSM8K) and the unbiased
//! pass@k estimator for code (Chen et al. 2021, "Evaluating Large Language Models Trained on
//! Code").

/// The final answer of a worked solution: the number after the last `####`, else the last
/// number in the text; thousands separators and a trailing period are dropped.
pub fn final_number(text: &str) -> Option<String> {
    let tail = text.rsplit_once("####").map_or(text, |(_, t)| t);
    let nums = numbers(tail);
    let pick = if text.contains("####") {
        nums.first()
    } else {
        nums.last()
    };
    pick.map(|n| canonical(n))
}

/// Number-like runs: an optional minus, digits with `,` separators and one `.`.
fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let neg = chars[i] == '-' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        if chars[i].is_ascii_digit() || neg {
            let start = i;
            i += 1;
            while i < chars.len() {
                let c = chars[i];
                let joins =
                    (c == ',' || c == '.') && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                if c.is_ascii_digit() || joins {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    out
}

/// `1,234.50` -> `1234.5`, `7.0` -> `7`, `-3` -> `-3`.
fn canonical(n: &str) -> String {
    let s: String = n.chars().filter(|&c| c != ',').collect();
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        return if t.is_empty() || t == "-" {
            "0".into()
        } else {
            t.to_string()
        };
    }
    s
}

/// 1.0 when the final numbers of `prediction` and `reference` are equal.
pub fn number_match(prediction: &str, reference: &str) -> f64 {
    match (final_number(prediction), final_number(reference)) {
        (Some(a), Some(b)) if a == b => 1.0,
        _ => 0.0,
    }
}

/// The unbiased pass@k of a problem with `n` samples of which `c` pass:
/// `1 - C(n - c, k) / C(n, k)`, as a stable product.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n < k || k == 0 {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_numbers_as_gsm8k_writes_them() {
        let sol = "She pays 3 * $1,200 = $3,600.\n#### 3,600";
        assert_eq!(final_number(sol).as_deref(), Some("3600"));
        assert_eq!(final_number("so the answer is 42.").as_deref(), Some("42"));
        assert_eq!(final_number("It is -7.50 degrees").as_deref(), Some("-7.5"));
        assert_eq!(final_number("no number"), None);
        assert_eq!(number_match("... #### 18", "The total is 18."), 1.0);
        assert_eq!(number_match("#### 17", "#### 18"), 0.0);
    }

    #[test]
    fn pass_at_k_matches_the_human_eval_estimator() {
        // numpy: 1 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))
        assert_eq!(pass_at_k(10, 0, 1), 0.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
        // C(7,5)/C(10,5) = 21/252 -> 1 - 1/12
        assert!((pass_at_k(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 3, 3), 1.0);
    }
}
