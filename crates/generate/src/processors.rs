//! Logits processors: each rewrites one row of logits in place, masking with `-inf`.
//! Applied in transformers' order: repetition penalty, temperature, top-k, top-p, min-p.

use crate::SamplingParams;

/// One step of logits processing; a small open trait so tasks can add their own.
pub trait LogitsProcessor {
    fn process(&self, logits: &mut [f32], history: &[u32]);
}

/// CTRL's repetition penalty (Keskar et al. 2019), as transformers applies it.
pub struct RepetitionPenalty(pub f32);

impl LogitsProcessor for RepetitionPenalty {
    fn process(&self, logits: &mut [f32], history: &[u32]) {
        let mut seen = std::collections::HashSet::new();
        for &t in history {
            if let Some(x) = logits.get_mut(t as usize) {
                if seen.insert(t) {
                    *x = if *x > 0.0 { *x / self.0 } else { *x * self.0 };
                }
            }
        }
    }
}

pub struct Temperature(pub f32);

impl LogitsProcessor for Temperature {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        logits.iter_mut().for_each(|x| *x /= self.0);
    }
}

/// Indices sorted by descending logit.
fn sorted_desc(logits: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx
}

pub struct TopK(pub usize);

impl LogitsProcessor for TopK {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        if self.0 == 0 || self.0 >= logits.len() {
            return;
        }
        let mut sorted = logits.to_vec();
        sorted.select_nth_unstable_by(self.0 - 1, |a, b| b.total_cmp(a));
        let kth = sorted[self.0 - 1];
        // Ties with the k-th value are kept, as transformers does.
        logits
            .iter_mut()
            .filter(|x| **x < kth)
            .for_each(|x| *x = f32::NEG_INFINITY);
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Nucleus sampling (Holtzman et al. 2020): keep the most likely tokens whose cumulative
/// probability first reaches p.
pub struct TopP(pub f32);

impl LogitsProcessor for TopP {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        if self.0 >= 1.0 {
            return;
        }
        let probs = softmax(logits);
        let order = sorted_desc(logits);
        let mut cum = 0.0;
        let mut keep = order.len();
        for (rank, &i) in order.iter().enumerate() {
            cum += probs[i];
            if cum >= self.0 {
                keep = rank + 1;
                break;
            }
        }
        for &i in &order[keep..] {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// Keep tokens whose probability is at least `p` times the most likely token's.
pub struct MinP(pub f32);

impl LogitsProcessor for MinP {
    fn process(&self, logits: &mut [f32], _: &[u32]) {
        if self.0 <= 0.0 {
            return;
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let threshold = max + self.0.ln(); // p_i >= p * p_max  <=>  x_i >= x_max + ln p
        logits
            .iter_mut()
            .filter(|x| **x < threshold)
            .for_each(|x| *x = f32::NEG_INFINITY);
    }
}

/// The processors `params` asks for, in order. Greedy decoding needs only the penalty.
pub fn pipeline(params: &SamplingParams) -> Vec<Box<dyn LogitsProcessor + Send + Sync>> {
    let mut out: Vec<Box<dyn LogitsProcessor + Send + Sync>> = Vec::new();
    if params.repetition_penalty != 1.0 {
        out.push(Box::new(RepetitionPenalty(params.repetition_penalty)));
    }
    if params.temperature > 0.0 {
        if params.temperature != 1.0 {
            out.push(Box::new(Temperature(params.temperature)));
        }
        if params.top_k > 0 {
            out.push(Box::new(TopK(params.top_k)));
        }
        if params.top_p < 1.0 {
            out.push(Box::new(TopP(params.top_p)));
        }
        if params.min_p > 0.0 {
            out.push(Box::new(MinP(params.min_p)));
        }
    }
    out
}

/// Picks the next token: argmax when `temperature == 0`, else a draw from softmax(logits)
/// with the given uniform number `u` in [0, 1).
pub fn pick(logits: &[f32], temperature: f32, u: f32) -> u32 {
    if temperature == 0.0 {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let probs = softmax(logits);
    let mut acc = 0.0;
    let mut last_valid = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last_valid = i;
            acc += p;
            if u < acc {
                return i as u32;
            }
        }
    }
    last_valid as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_zero_picks_argmax() {
        assert_eq!(pick(&[0.1, 3.0, -1.0, 2.9], 0.0, 0.99), 1);
    }

    #[test]
    fn top_k_keeps_k_best() {
        let mut l = vec![1.0, 5.0, 3.0, 4.0];
        TopK(2).process(&mut l, &[]);
        assert_eq!(l, vec![f32::NEG_INFINITY, 5.0, f32::NEG_INFINITY, 4.0]);
    }

    #[test]
    fn top_p_keeps_smallest_nucleus() {
        // probs ~ [0.6652, 0.2447, 0.0900]: p = 0.8 keeps the first two.
        let mut l = vec![2.0, 1.0, 0.0];
        TopP(0.8).process(&mut l, &[]);
        assert_eq!(l, vec![2.0, 1.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        // ratio to the best: 1, e^-1 = 0.37, e^-3 = 0.05; min_p 0.1 drops the last.
        let mut l = vec![3.0, 2.0, 0.0];
        MinP(0.1).process(&mut l, &[]);
        assert_eq!(l, vec![3.0, 2.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut l = vec![2.0, -2.0, 1.0];
        RepetitionPenalty(2.0).process(&mut l, &[0, 1, 0]);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn sampling_follows_cumulative_probabilities() {
        let l = [0.0f32, 0.0]; // 50/50
        assert_eq!(pick(&l, 1.0, 0.25), 0);
        assert_eq!(pick(&l, 1.0, 0.75), 1);
        let masked = [f32::NEG_INFINITY, 0.0];
        assert_eq!(pick(&masked, 1.0, 0.0), 1);
    }
}
