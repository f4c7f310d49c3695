//! Features and batches.

use crate::{DataError, Result};
use candle_core::{Device, Tensor};

/// Label value whose position is not scored (PyTorch's ignore index).
pub const IGNORE_INDEX: i64 = -100;

/// One encoded example. `labels[i]` is the token at position i when it is supervised, else -100;
/// the model predicts position i from positions before it.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
}

/// A right-padded batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// (B, T) u32.
    pub input_ids: Tensor,
    /// (B, T) i64, -100 on padding and unsupervised positions.
    pub labels: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub key_mask: Vec<Vec<u8>>,
    /// Supervised positions that a next-token loss scores (labels after the first position).
    pub n_scored: usize,
    pub n_tokens: usize,
}

/// Pads `features` on the right to the longest one: ids with `pad_id`, labels with -100.
pub fn collate(features: &[Features], pad_id: u32, device: &Device) -> Result<Batch> {
    if features.is_empty() {
        return Err(DataError::Invalid("cannot collate an empty batch".into()));
    }
    let t = features
        .iter()
        .map(|f| f.input_ids.len())
        .max()
        .unwrap_or(0);
    let b = features.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut labels = Vec::with_capacity(b * t);
    let mut key_mask = Vec::with_capacity(b);
    let mut n_scored = 0;
    let mut n_tokens = 0;
    for f in features {
        if f.labels.len() != f.input_ids.len() {
            return Err(DataError::Invalid(format!(
                "features have {} ids but {} labels",
                f.input_ids.len(),
                f.labels.len()
            )));
        }
        let pad = t - f.input_ids.len();
        ids.extend_from_slice(&f.input_ids);
        ids.extend(std::iter::repeat_n(pad_id, pad));
        labels.extend_from_slice(&f.labels);
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
        let mut m = vec![1u8; f.input_ids.len()];
        m.extend(std::iter::repeat_n(0u8, pad));
        key_mask.push(m);
        n_scored += f
            .labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count();
        n_tokens += f.input_ids.len();
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (b, t), device)?,
        labels: Tensor::from_vec(labels, (b, t), device)?,
        key_mask,
        n_scored,
        n_tokens,
    })
}
