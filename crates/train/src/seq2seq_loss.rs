//! The encoder-decoder training loss: teacher forcing (the decoder reads the labels shifted
//! right), cross-entropy on the scored target positions, with label smoothing as transformers'
//! `LabelSmoother` applies it (`--label-smoothing`, `label_smoothing_factor`). Only scored
//! positions go through the LM head.

use crate::Result;
use candle_core::{DType, Tensor, D};
use tasklm_data::IGNORE_INDEX;
use tasklm_models::seq2seq::EncoderDecoder;
use tasklm_nn::ops::masked_cross_entropy;

/// Summed label-smoothed cross-entropy of `logits` (N, V) against `targets` (N, i64, all
/// scored): per position `(1 - eps) * nll + eps * mean over the vocabulary of -log p`, which is
/// transformers' `LabelSmoother` before its division by the number of scored positions.
pub fn label_smoothed_sum(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<Tensor> {
    if eps == 0.0 {
        return Ok(masked_cross_entropy(logits, targets)?.0);
    }
    let vocab = logits.dim(D::Minus1)?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let idx = targets.to_dtype(DType::U32)?.unsqueeze(1)?;
    let nll = logp.gather(&idx, 1)?.sum_all()?.neg()?;
    let smooth = (logp.sum_all()?.neg()? / vocab as f64)?;
    Ok(((nll * (1.0 - eps))? + (smooth * eps)?)?)
}

/// Teacher-forced loss of an encoder-decoder on a padded batch: `source` (B, S) with its key
/// mask, `labels` (B, T; -100 not scored). Returns the summed (label-smoothed) loss and the
/// number of scored positions.
pub fn seq2seq_train_loss(
    model: &dyn EncoderDecoder,
    source: &Tensor,
    key_mask: &[Vec<u8>],
    labels: &Tensor,
    label_smoothing: f64,
    train: bool,
) -> Result<(Tensor, usize)> {
    let enc = model.encode(source, key_mask, train)?;
    let mut cache = model.start_cache(&enc, key_mask)?.without_self_cache();
    let dec_ids = model.shift_right(labels)?;
    let hidden = model.decode(&dec_ids, &mut cache, train)?; // (B, T, H)
    let (b, t, h) = hidden.dims3()?;
    let flat = labels
        .to_dtype(DType::I64)?
        .flatten_all()?
        .to_vec1::<i64>()?;
    let keep: Vec<u32> = (0..b * t)
        .filter(|&i| flat[i] != IGNORE_INDEX)
        .map(|i| i as u32)
        .collect();
    if keep.is_empty() {
        return Ok((Tensor::zeros((), hidden.dtype(), hidden.device())?, 0));
    }
    let idx = Tensor::from_vec(keep.clone(), keep.len(), hidden.device())?;
    let scored = hidden.reshape((b * t, h))?.index_select(&idx, 0)?; // (N, H)
    let targets: Vec<i64> = keep.iter().map(|&i| flat[i as usize]).collect();
    let targets = Tensor::from_vec(targets, keep.len(), hidden.device())?;
    let logits = model.logits(&scored)?; // (N, V)
    Ok((
        label_smoothed_sum(&logits, &targets, label_smoothing)?,
        keep.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reference values from `torch.nn.CrossEntropyLoss(label_smoothing=eps, reduction="sum")`,
    /// which equals transformers' `LabelSmoother` times the count: logits
    /// [[1, 2, 0.5], [0.1, -1, 3]], targets [1, 2].
    #[test]
    fn label_smoothing_matches_torch() -> Result<()> {
        let logits = Tensor::new(&[[1f32, 2.0, 0.5], [0.1, -1.0, 3.0]], &Device::Cpu)?;
        let targets = Tensor::new(&[1i64, 2], &Device::Cpu)?;
        let plain = label_smoothed_sum(&logits, &targets, 0.0)?.to_scalar::<f32>()?;
        let smooth = label_smoothed_sum(&logits, &targets, 0.1)?.to_scalar::<f32>()?;
        // torch: F.cross_entropy(l, t, reduction="sum") and with label_smoothing=0.1.
        assert!((plain - 0.535_143).abs() < 1e-5, "{plain}");
        assert!((smooth - 0.848_476_4).abs() < 1e-5, "{smooth}");
        Ok(())
    }
}
