//! tasklm-eval: the standard metrics of each task, in plain Rust (no tensors), each checked
//! against the reference implementation's output on fixed inputs.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod answers;
pub mod classification;
pub mod porter;
pub mod rouge;
pub mod sacrebleu;
pub mod seqeval;
pub mod squad;

pub use answers::{final_number, number_match, pass_at_k};
pub use classification::{accuracy, macro_f1};
pub use rouge::{mean_rouge, rouge, rouge_multi, Rouge, RougeScore};
pub use sacrebleu::{corpus_bleu, corpus_chrf, tokenize_13a};
pub use seqeval::{entities, entity_scores, EntityScores, Prf};
pub use squad::{normalize_answer, squad_scores};
