//! tasklm-generate: the one generation loop used by the CLI, the server, tasks and benchmarks.
//!
//! Logits processors (repetition penalty, temperature, top-k, top-p, min-p), a seeded sampler,
//! stop criteria (EOS, stop strings, length), incremental UTF-8-safe detokenizing, and
//! OpenAI-shaped logprobs.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod detok;
mod error;
mod generator;
pub mod label_scoring;
mod params;
pub mod processors;
mod stop;

pub use detok::IncrementalDecoder;
pub use error::{GenerateError, Result};
pub use generator::{generate, FinishReason, Generation, Timing, TokenLogprob, TopLogprob};
pub use label_scoring::{label_logprobs, label_logprobs_batch, label_probabilities, LabelNorm};
pub use params::SamplingParams;
pub use stop::StopChecker;
