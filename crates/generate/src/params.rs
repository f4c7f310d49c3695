use crate::{GenerateError, Result};
use serde::{Deserialize, Serialize};

/// Sampling options: plain data with llama.cpp's defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive logits of already-seen tokens by this (and multiply negative ones); 1 = off.
    pub repetition_penalty: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Generation stops before the first occurrence of any of these.
    pub stop: Vec<String>,
    /// Report this many most likely alternatives per generated token (0 = no logprobs).
    pub top_logprobs: usize,
    /// Report each generated token's logprob even with `top_logprobs == 0`.
    pub logprobs: bool,
    /// Keep generating past end-of-sequence tokens (benchmarks use it to get a fixed length).
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            seed: 0,
            max_new_tokens: 256,
            stop: Vec::new(),
            top_logprobs: 0,
            logprobs: false,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no other processing.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            max_new_tokens,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(GenerateError::InvalidParam(m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        if self.top_logprobs > 20 {
            return bad(format!(
                "top_logprobs must be at most 20, got {}",
                self.top_logprobs
            ));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return bad("stop strings must not be empty".into());
        }
        Ok(())
    }
}
