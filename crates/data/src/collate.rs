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
    /// Segment id (1, 2, ...) of each position when several samples are packed into one
    /// sequence; empty for one sample. Samples attend only within their segment.
    pub segments: Vec<u8>,
}

impl Features {
    /// One sample.
    pub fn new(input_ids: Vec<u32>, labels: Vec<i64>) -> Self {
        Self {
            input_ids,
            labels,
            segments: Vec::new(),
        }
    }
}

/// Most samples one packed sequence holds (segment ids are bytes, 0 meaning padding and 255
/// a shared prefix, `tasklm_nn::SHARED_SEGMENT`).
pub const MAX_PACKED_SAMPLES: usize = 254;

/// Packs samples, in order, into sequences of at most `max_len` tokens. Each sample keeps its
/// own positions and attends only to itself (see [`Features::segments`]), and its first
/// position is never scored, so the packed loss equals the loss of the samples apart.
pub fn pack(features: &[Features], max_len: usize) -> Result<Vec<Features>> {
    let mut out: Vec<Features> = Vec::new();
    let mut cur = Features::new(Vec::new(), Vec::new());
    let mut n_in_cur = 0usize;
    for f in features {
        if f.input_ids.len() > max_len {
            return Err(DataError::Invalid(format!(
                "a sample of {} tokens does not fit a packed sequence of {max_len}",
                f.input_ids.len()
            )));
        }
        if !f.segments.is_empty() {
            return Err(DataError::Invalid("cannot pack packed sequences".into()));
        }
        if cur.input_ids.len() + f.input_ids.len() > max_len || n_in_cur == MAX_PACKED_SAMPLES {
            out.push(std::mem::replace(
                &mut cur,
                Features::new(Vec::new(), Vec::new()),
            ));
            n_in_cur = 0;
        }
        n_in_cur += 1;
        cur.input_ids.extend_from_slice(&f.input_ids);
        cur.labels.extend_from_slice(&f.labels);
        if let Some(first) = cur.labels.len().checked_sub(f.labels.len()) {
            // Nothing precedes a sample's first token within its segment.
            if let Some(l) = cur.labels.get_mut(first) {
                *l = IGNORE_INDEX;
            }
        }
        cur.segments
            .extend(std::iter::repeat_n(n_in_cur as u8, f.input_ids.len()));
    }
    if !cur.input_ids.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// A right-padded batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// (B, T) u32.
    pub input_ids: Tensor,
    /// (B, T) i64, -100 on padding and unsupervised positions.
    pub labels: Tensor,
    /// 0 for padding; otherwise the segment id (1 for unpacked rows).
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
        let mut m = if f.segments.is_empty() {
            vec![1u8; f.input_ids.len()]
        } else if f.segments.len() == f.input_ids.len() && !f.segments.contains(&0) {
            f.segments.clone()
        } else {
            return Err(DataError::Invalid(format!(
                "features have {} ids but {} non-zero segment ids",
                f.input_ids.len(),
                f.segments.len()
            )));
        };
        m.extend(std::iter::repeat_n(0u8, pad));
        key_mask.push(m);
        n_scored += scored_positions(f);
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

/// Positions a next-token loss scores in `f`: supervised labels after the first position.
pub fn scored_positions(f: &Features) -> usize {
    f.labels
        .iter()
        .skip(1)
        .filter(|&&l| l != IGNORE_INDEX)
        .count()
}
