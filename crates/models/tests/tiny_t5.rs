//! Golden parity of the T5 encoder-decoder on tiny random models written by
//! `scripts/golden/seq2seq_t5.py` (T5 with a tied head and relu; v1.1 / Flan-T5 style with
//! gated-gelu and its own head): encoder hidden states, logits, the loss with -100 labels and
//! every parameter's gradient against PyTorch; a padded batch against single rows; cached
//! decoding (self-attention cache grown per step, cross-attention keys computed once) against
//! the full teacher-forced pass. Tolerances in `common`.

mod common;

use anyhow::Result;
use common::{check_dropout, check_golden, check_padding_and_cache};

#[test]
fn tiny_t5_matches_transformers() -> Result<()> {
    check_golden("tiny_t5")
}

#[test]
fn tiny_t5_gated_matches_transformers() -> Result<()> {
    check_golden("tiny_t5_gated")
}

#[test]
fn padded_batch_equals_single_rows_and_cached_decoding_equals_teacher_forcing() -> Result<()> {
    check_padding_and_cache("tiny_t5_gated")
}

#[test]
fn dropout_is_real_in_training_only() -> Result<()> {
    check_dropout("tiny_t5")
}
