//! Beam search for the generative tasks' eval and predict, decoder and encoder-decoder alike:
//! the best hypothesis of each row, decoded.

use crate::Result;
use tasklm_generate::{beam_search, BeamParams, RowInput, StepModel};
use tasklm_text::TextTokenizer;

/// The text of each row's best hypothesis (special tokens skipped, not trimmed), with the
/// caller's beam settings, `max_new_tokens` new tokens and one sequence returned per row.
pub fn best_beam_texts<M: StepModel + ?Sized>(
    steps: &M,
    tok: &TextTokenizer,
    rows: &[RowInput],
    beam: &BeamParams,
    max_new_tokens: usize,
) -> Result<Vec<String>> {
    let params = BeamParams {
        max_new_tokens,
        num_return_sequences: 1,
        ..beam.clone()
    };
    beam_search(steps, &tok.eos_ids, rows, &params)?
        .into_iter()
        .map(|hyps| {
            let ids = hyps
                .into_iter()
                .next()
                .map(|h| h.token_ids)
                .unwrap_or_default();
            Ok(tok.decode(&ids, true)?)
        })
        .collect()
}
