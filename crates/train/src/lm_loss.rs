//! The causal language-modelling loss: position t predicts token t+1, scored where the label
//! is not -100. Only scored positions go through the LM head, which for SFT (prompts unscored)
//! saves most of the largest activation, the (positions x vocab) logits.

use crate::Result;
use candle_core::{DType, Tensor};
use tasklm_data::{Batch, IGNORE_INDEX};
use tasklm_models::{CausalLm, DecoderInput};
use tasklm_nn::ops::masked_cross_entropy;

/// Summed loss over the batch's scored next-token positions, and their count.
pub fn causal_lm_loss(model: &dyn CausalLm, batch: &Batch, train: bool) -> Result<(Tensor, usize)> {
    let input = DecoderInput::new(batch.input_ids.clone(), batch.key_mask.clone());
    input_lm_loss(model, &input, &batch.labels, train)
}

/// [`causal_lm_loss`] of a prepared input (one that may carry spliced embeddings, as a
/// vision-language model's images) with its (B, T) i64 labels.
pub fn input_lm_loss(
    model: &dyn CausalLm,
    input: &DecoderInput,
    labels: &Tensor,
    train: bool,
) -> Result<(Tensor, usize)> {
    let hidden = model.forward_hidden(input, None, train)?; // (B, T, H)
    let (b, t, h) = hidden.dims3()?;
    let hidden = hidden.narrow(1, 0, t - 1)?.reshape((b * (t - 1), h))?; // (B*(T-1), H)
    let labels = labels
        .narrow(1, 1, t - 1)?
        .flatten_all()?
        .to_vec1::<i64>()?;
    let keep: Vec<u32> = labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l != IGNORE_INDEX)
        .map(|(i, _)| i as u32)
        .collect();
    if keep.is_empty() {
        return Ok((Tensor::zeros((), hidden.dtype(), hidden.device())?, 0));
    }
    let idx = Tensor::from_vec(keep.clone(), keep.len(), hidden.device())?;
    let scored = hidden.index_select(&idx, 0)?; // (N, H)
    let targets: Vec<i64> = keep.iter().map(|&i| labels[i as usize]).collect();
    let targets = Tensor::from_vec(targets, keep.len(), hidden.device())?.to_dtype(DType::I64)?;
    let logits = model.lm_logits(&scored)?; // (N, V)
    Ok(masked_cross_entropy(&logits, &targets)?)
}
