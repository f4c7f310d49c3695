//! Beam search options and the processors beam search applies to each step's log-probabilities,
//! with transformers' semantics (`NoRepeatNGramLogitsProcessor`,
//! `MinNewTokensLengthLogitsProcessor`, `ForcedBOSTokenLogitsProcessor`,
//! `ForcedEOSTokenLogitsProcessor`).

use crate::{GenerateError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// When beam search stops (transformers' `early_stopping`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyStopping {
    /// `False`: stop once the best running beam, at its current length, cannot beat the worst
    /// finished hypothesis (transformers' default).
    #[default]
    Heuristic,
    /// `True`: stop as soon as `num_beams` hypotheses have finished.
    Done,
    /// `"never"`: stop only when no running beam can possibly beat a finished one (with a
    /// positive length penalty, assuming it could run to the maximum length).
    Never,
}

impl std::str::FromStr for EarlyStopping {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "false" => Ok(Self::Heuristic),
            "true" => Ok(Self::Done),
            "never" => Ok(Self::Never),
            other => Err(format!("`{other}`: expected true, false or never")),
        }
    }
}

/// Beam search options, as transformers' `generate(num_beams=...)` takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamParams {
    pub num_beams: usize,
    /// Finished hypotheses score `sum(logprobs) / generated_len ^ length_penalty`.
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    /// Never repeat an n-gram of this size in a sequence, prompt included (0 = off).
    pub no_repeat_ngram_size: usize,
    /// End-of-sequence tokens are banned until this many tokens were generated.
    pub min_new_tokens: usize,
    pub max_new_tokens: usize,
    /// Hypotheses returned per prompt, best first (at most `num_beams`).
    pub num_return_sequences: usize,
    /// The token forced as the first generated one when the decoder prompt is one token long
    /// (an encoder-decoder's start token: mBART's target language).
    pub forced_bos_token_id: Option<u32>,
    /// The token forced as the last one when the maximum length is reached.
    pub forced_eos_token_id: Option<u32>,
}

impl BeamParams {
    pub fn new(num_beams: usize, max_new_tokens: usize) -> Self {
        Self {
            num_beams,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
            min_new_tokens: 0,
            max_new_tokens,
            num_return_sequences: 1,
            forced_bos_token_id: None,
            forced_eos_token_id: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(GenerateError::InvalidParam(m));
        if self.num_beams == 0 {
            return bad("num_beams must be at least 1".into());
        }
        if self.num_return_sequences == 0 || self.num_return_sequences > self.num_beams {
            return bad(format!(
                "num_return_sequences must be in 1..={} (num_beams), got {}",
                self.num_beams, self.num_return_sequences
            ));
        }
        if !self.length_penalty.is_finite() {
            return bad(format!(
                "length_penalty must be finite, got {}",
                self.length_penalty
            ));
        }
        Ok(())
    }
}

/// Sets the log-probabilities of every token that would complete an n-gram already in `seq`
/// to minus infinity.
pub(crate) fn ban_repeated_ngrams(seq: &[u32], n: usize, logprobs: &mut [f32]) {
    if n == 0 || seq.len() + 1 < n {
        return;
    }
    let prefix = &seq[seq.len() + 1 - n..];
    let mut banned: HashMap<&[u32], Vec<u32>> = HashMap::new();
    for gram in seq.windows(n) {
        banned.entry(&gram[..n - 1]).or_default().push(gram[n - 1]);
    }
    for &t in banned.get(prefix).map(Vec::as_slice).unwrap_or(&[]) {
        if let Some(x) = logprobs.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// Forces `token`: every other entry minus infinity, `token` zero.
pub(crate) fn force(token: u32, logprobs: &mut [f32]) {
    for x in logprobs.iter_mut() {
        *x = f32::NEG_INFINITY;
    }
    if let Some(x) = logprobs.get_mut(token as usize) {
        *x = 0.0;
    }
}

/// Sets the log-probabilities of `tokens` to minus infinity.
pub(crate) fn ban(tokens: &[u32], logprobs: &mut [f32]) {
    for &t in tokens {
        if let Some(x) = logprobs.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// transformers' processor order for beam search over one row's log-probabilities: the
/// sequence so far (`seq`, prompt included; `generated` of it are new), the maximum length of
/// the whole sequence, the end-of-sequence ids, and the tokens never generated (single-token
/// `bad_words_ids`).
pub(crate) fn process_beam_row(
    p: &BeamParams,
    seq: &[u32],
    (generated, max_length): (usize, usize),
    (eos, never): (&[u32], &[u32]),
    logprobs: &mut [f32],
) {
    if generated < p.min_new_tokens {
        ban(eos, logprobs);
    }
    ban_repeated_ngrams(seq, p.no_repeat_ngram_size, logprobs);
    ban(never, logprobs);
    if let Some(bos) = p.forced_bos_token_id {
        if seq.len() == 1 {
            force(bos, logprobs);
        }
    }
    if let Some(e) = p.forced_eos_token_id {
        if seq.len() + 1 == max_length {
            force(e, logprobs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ngrams_are_banned() {
        let mut lp = vec![0.0; 6];
        // Bigrams seen: (1,2), (2,3), (3,1); the sequence ends in 1, so 2 is banned.
        ban_repeated_ngrams(&[1, 2, 3, 1], 2, &mut lp);
        assert_eq!(lp[2], f32::NEG_INFINITY);
        assert!(lp.iter().enumerate().all(|(i, &x)| i == 2 || x == 0.0));
        let mut lp = vec![0.0; 6];
        ban_repeated_ngrams(&[1, 2], 3, &mut lp);
        assert!(lp.iter().all(|&x| x == 0.0), "too short for a trigram");
    }

    #[test]
    fn forced_and_min_length_tokens() {
        let p = BeamParams {
            min_new_tokens: 2,
            forced_bos_token_id: Some(4),
            ..BeamParams::new(2, 5)
        };
        let mut lp = vec![-1.0; 6];
        process_beam_row(&p, &[0], (0, 6), (&[5], &[]), &mut lp);
        assert_eq!(lp[4], 0.0);
        assert!(lp
            .iter()
            .enumerate()
            .all(|(i, &x)| i == 4 || x.is_infinite()));
        let p = BeamParams {
            forced_eos_token_id: Some(5),
            ..BeamParams::new(2, 5)
        };
        let mut lp = vec![-1.0; 6];
        process_beam_row(&p, &[0, 1, 2], (2, 4), (&[5], &[]), &mut lp);
        assert_eq!(lp[5], 0.0, "the last position is forced to EOS");
        // Tokens never generated (Marian's pad) are banned at every step.
        let mut lp = vec![-1.0; 6];
        process_beam_row(
            &BeamParams::new(2, 5),
            &[0, 1],
            (1, 9),
            (&[5], &[0]),
            &mut lp,
        );
        assert_eq!(lp[0], f32::NEG_INFINITY);
        assert!(lp[1..].iter().all(|&x| x == -1.0));
    }

    #[test]
    fn early_stopping_parses_as_transformers_spells_it() {
        assert_eq!("never".parse(), Ok(EarlyStopping::Never));
        assert_eq!("true".parse(), Ok(EarlyStopping::Done));
        assert!("maybe".parse::<EarlyStopping>().is_err());
    }
}
