//! tasklm-generate: the one generation loop used by the CLI, the server, tasks and benchmarks.
//!
//! Generation is written against a step contract ([`steps::StepModel`]: prefill rows, advance
//! every row by one token, add, drop, reorder and fork rows) that every decoder serves through
//! [`DecoderSteps`]; [`sample`] (behind [`generate`]) is one strategy over it, [`beam_search`]
//! (transformers' semantics) another.
//!
//! Logits processors (repetition penalty, temperature, top-k, top-p, min-p), a seeded sampler,
//! stop criteria (EOS, stop strings, length), incremental UTF-8-safe detokenizing, and
//! OpenAI-shaped logprobs.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod beam;
pub mod beam_params;
mod decoder_steps;
mod detok;
mod error;
mod generator;
pub mod label_scoring;
mod params;
pub mod processors;
mod row_sampler;
pub mod seq2seq_steps;
pub mod steps;
mod stop;

pub use beam::{beam_search, BeamHypothesis};
pub use beam_params::{BeamParams, EarlyStopping};
pub use decoder_steps::{DecoderBatch, DecoderSteps};
pub use detok::IncrementalDecoder;
pub use error::{GenerateError, Result};
pub use generator::{generate, sample, FinishReason, Generation, Timing, TokenLogprob, TopLogprob};
pub use label_scoring::{
    label_logprobs, label_logprobs_batch, label_logprobs_input, label_probabilities, LabelNorm,
};
pub use params::SamplingParams;
pub use row_sampler::{Accepted, RowSampler};
pub use seq2seq_steps::{Seq2SeqBatch, Seq2SeqSteps};
pub use steps::{log_softmax_rows, RowBatch, RowInput, StepModel};
pub use stop::StopChecker;
