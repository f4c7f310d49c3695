//! Corpus BLEU and chrF exactly as `sacrebleu` 2.4 computes them with its defaults: BLEU with
//! the `13a` tokenizer, 4-gram precisions clipped by the per-n-gram maximum over references,
//! the closest reference length (ties to the shorter), `exp` smoothing; chrF with character
//! 6-grams (whitespace removed), beta 2, and the effective-order average of precision and
//! recall. Both print sacrebleu's signature.

use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The sacrebleu release whose numbers these reproduce (named in the signatures).
pub const SACREBLEU_VERSION: &str = "2.4.3";
const MAX_ORDER: usize = 4;
const CHRF_ORDER: usize = 6;
const CHRF_BETA: f64 = 2.0;

fn regexes() -> &'static [(Regex, &'static str); 4] {
    static R: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    R.get_or_init(|| {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("13a pattern {p}: {e}"));
        [
            (re(r"([\{-~\[-` -&\(-\+:-@/])"), " $1 "),
            (re(r"([^0-9])([\.,])"), "$1 $2 "),
            (re(r"([\.,])([^0-9])"), " $1 $2"),
            (re(r"([0-9])(-)"), "$1 $2 "),
        ]
    })
}

/// sacrebleu's `13a` tokenizer (mteval-v13a): unescapes a few entities, splits off
/// punctuation, and keeps periods and commas inside numbers.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut s = format!(" {line} ");
    for (re, rep) in regexes() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn word_ngrams(tokens: &[&str], max: usize) -> HashMap<Vec<String>, usize> {
    let mut out = HashMap::new();
    for n in 1..=max {
        for w in tokens.windows(n) {
            *out.entry(w.iter().map(|s| s.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    out
}

/// A corpus BLEU score with its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Bleu {
    pub score: f64,
    /// n-gram precisions (x100), n = 1..4.
    pub precisions: [f64; MAX_ORDER],
    pub brevity_penalty: f64,
    pub sys_len: usize,
    pub ref_len: usize,
    pub signature: String,
}

/// Corpus BLEU of `hypotheses` against each one's references.
pub fn corpus_bleu(hypotheses: &[String], references: &[Vec<String>]) -> Bleu {
    let (mut correct, mut total) = ([0usize; MAX_ORDER], [0usize; MAX_ORDER]);
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    let nrefs = references.iter().map(Vec::len).max().unwrap_or(0);
    for (hyp, refs) in hypotheses.iter().zip(references) {
        let mut ref_ngrams: HashMap<Vec<String>, usize> = HashMap::new();
        let mut lens = Vec::new();
        for r in refs {
            let tok = tokenize_13a(r.trim_end());
            let words: Vec<&str> = tok.split_whitespace().collect();
            lens.push(words.len());
            for (g, c) in word_ngrams(&words, MAX_ORDER) {
                let e = ref_ngrams.entry(g).or_insert(0);
                *e = (*e).max(c);
            }
        }
        let tok = tokenize_13a(hyp.trim_end());
        let words: Vec<&str> = tok.split_whitespace().collect();
        let hyp_len = words.len();
        // The closest reference length; ties go to the shorter one.
        let mut closest: Option<(usize, usize)> = None;
        for &l in &lens {
            let d = hyp_len.abs_diff(l);
            closest = match closest {
                None => Some((d, l)),
                Some((cd, cl)) if d < cd || (d == cd && l < cl) => Some((d, l)),
                keep => keep,
            };
        }
        sys_len += hyp_len;
        ref_len += closest.map_or(0, |c| c.1);
        for (g, c) in word_ngrams(&words, MAX_ORDER) {
            let n = g.len() - 1;
            total[n] += c;
            if let Some(&r) = ref_ngrams.get(&g) {
                correct[n] += c.min(r);
            }
        }
    }
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let signature =
        format!("nrefs:{nrefs}|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}");
    if correct.iter().all(|&c| c == 0) {
        return Bleu {
            score: 0.0,
            precisions,
            brevity_penalty: bp,
            sys_len,
            ref_len,
            signature,
        };
    }
    let mut smooth = 1.0;
    for n in 0..MAX_ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    let score = bp * (precisions.iter().map(|&p| log(p)).sum::<f64>() / MAX_ORDER as f64).exp();
    Bleu {
        score,
        precisions,
        brevity_penalty: bp,
        sys_len,
        ref_len,
        signature,
    }
}

fn char_ngrams(s: &str) -> Vec<HashMap<String, usize>> {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    (1..=CHRF_ORDER)
        .map(|n| {
            let mut m = HashMap::new();
            for w in chars.windows(n) {
                *m.entry(w.iter().collect()).or_insert(0) += 1;
            }
            m
        })
        .collect()
}

/// [hyp, ref, match] counts per order.
fn chrf_stats(hyp: &[HashMap<String, usize>], r: &[HashMap<String, usize>]) -> Vec<usize> {
    hyp.iter()
        .zip(r)
        .flat_map(|(h, r)| {
            let (mut hc, mut mc) = (0, 0);
            for (g, &c) in h {
                hc += c;
                if let Some(&rc) = r.get(g) {
                    mc += c.min(rc);
                }
            }
            [if r.is_empty() { 0 } else { hc }, r.values().sum(), mc]
        })
        .collect()
}

fn chrf_from_stats(stats: &[usize]) -> f64 {
    let factor = CHRF_BETA * CHRF_BETA;
    let (mut avg_p, mut avg_r, mut k) = (0.0, 0.0, 0usize);
    for i in 0..CHRF_ORDER {
        let (h, r, m) = (stats[3 * i], stats[3 * i + 1], stats[3 * i + 2]);
        if h > 0 && r > 0 {
            avg_p += m as f64 / h as f64;
            avg_r += m as f64 / r as f64;
            k += 1;
        }
    }
    if k == 0 {
        return 0.0;
    }
    let (p, r) = (avg_p / k as f64, avg_r / k as f64);
    if p + r == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * p * r / (factor * p + r)
}

/// Corpus chrF (x100) and its signature.
pub fn corpus_chrf(hypotheses: &[String], references: &[Vec<String>]) -> (f64, String) {
    let mut sums = vec![0usize; 3 * CHRF_ORDER];
    for (hyp, refs) in hypotheses.iter().zip(references) {
        let h = char_ngrams(hyp);
        // The reference with the best sentence-level F wins (the first on ties).
        let mut best: Option<(f64, Vec<usize>)> = None;
        for r in refs {
            let s = chrf_stats(&h, &char_ngrams(r));
            let f = chrf_from_stats(&s);
            if best.as_ref().is_none_or(|b| f > b.0) {
                best = Some((f, s));
            }
        }
        if let Some((_, s)) = best {
            sums.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        }
    }
    let nrefs = references.iter().map(Vec::len).max().unwrap_or(0);
    (
        chrf_from_stats(&sums),
        format!("nrefs:{nrefs}|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{SACREBLEU_VERSION}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("Hello, world! It costs $3.50."),
            "Hello , world ! It costs $ 3.50 ."
        );
        assert_eq!(tokenize_13a("a-b 1-2 &amp; \"q\""), "a-b 1 - 2 & \" q \"");
    }
}
