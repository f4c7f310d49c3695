//! Task heads, generic over the backbone: they read hidden states (or a pooled vector) and are
//! stored under the names transformers' `...ForSequenceClassification`,
//! `...ForTokenClassification` and `...ForQuestionAnswering` use (`classifier`, `qa_outputs`).
//! [`Pool`] turns hidden states (B, T, H) into one vector per row (B, H); it has no weights.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use tasklm_nn::{dropout, Linear};

/// How a sequence of hidden states (B, T, H) becomes one vector per row (B, H).
///
/// The key mask is the one the backbone ran with (`key_mask[b][t]`: 0 for padding, non-zero for
/// a real token); `None` means every position is real.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pool {
    /// The first position (BERT's `[CLS]`; right-padded rows).
    #[default]
    Cls,
    /// The mean over the real tokens (sentence-transformers' mean pooling).
    Mean,
    /// The last real token of each row, wherever the padding is (left or right): what a decoder
    /// used as a classifier or embedder reads.
    Last,
}

impl Pool {
    /// Pooled (B, H) vectors for hidden states (B, T, H). Differentiable: gradients reach the
    /// pooled positions.
    pub fn forward(&self, hidden: &Tensor, key_mask: Option<&[Vec<u8>]>) -> Result<Tensor> {
        let (b, t, h) = hidden.dims3()?;
        if let Some(m) = key_mask {
            check_mask(m, b, t)?;
        }
        match self {
            Self::Cls => hidden.narrow(1, 0, 1)?.squeeze(1), // (B, H)
            Self::Mean => {
                let Some(mask) = key_mask else {
                    return hidden.mean(1); // (B, H)
                };
                let flat: Vec<f32> = mask.iter().flatten().map(|&m| f32::from(m != 0)).collect();
                let weights =
                    Tensor::from_vec(flat, (b, t, 1), hidden.device())?.to_dtype(hidden.dtype())?; // (B, T, 1)
                let sum = hidden.broadcast_mul(&weights)?.sum(1)?; // (B, H)
                                                                   // A row with no real token would divide by zero; clamp its count to 1 (its sum
                                                                   // is 0), as sentence-transformers does.
                let count = weights.sum(1)?.clamp(1f64, f64::MAX)?; // (B, 1)
                sum.broadcast_div(&count)
            }
            Self::Last => {
                let last: Vec<u32> = match key_mask {
                    Some(mask) => mask
                        .iter()
                        .enumerate()
                        .map(|(i, row)| {
                            let j = row.iter().rposition(|&m| m != 0).unwrap_or(0);
                            (i * t + j) as u32
                        })
                        .collect(),
                    None => (0..b)
                        .map(|i| (i * t + t.saturating_sub(1)) as u32)
                        .collect(),
                };
                let idx = Tensor::from_vec(last, b, hidden.device())?;
                hidden.reshape((b * t, h))?.index_select(&idx, 0) // (B, H)
            }
        }
    }

    /// From a name as configs and the CLI spell it (`cls`, `mean`, `last`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cls" => Some(Self::Cls),
            "mean" => Some(Self::Mean),
            "last" => Some(Self::Last),
            _ => None,
        }
    }
}

fn check_mask(mask: &[Vec<u8>], b: usize, t: usize) -> Result<()> {
    if mask.len() != b {
        candle_core::bail!("pooling: {} mask rows for a batch of {b}", mask.len());
    }
    if let Some(i) = mask.iter().position(|r| r.len() != t) {
        candle_core::bail!(
            "pooling: mask row {i} has {} positions, expected {t}",
            mask[i].len()
        );
    }
    Ok(())
}

/// Dropout then a linear layer to `n_labels` logits (`classifier.weight`, `classifier.bias`).
/// Serves sequence classification (over a pooled (B, H) vector) and token classification
/// (over (B, T, H) hidden states) alike.
#[derive(Clone, Debug)]
pub struct ClassifierHead {
    classifier: Linear,
    dropout: f32,
}

impl ClassifierHead {
    /// `vb` is the model root: the head loads `classifier.weight` (n_labels, H) and its bias.
    pub fn new(hidden: usize, n_labels: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            classifier: Linear::new(hidden, n_labels, true, vb.pp("classifier"))?,
            dropout,
        })
    }

    /// Logits (.., n_labels) for features (.., H).
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        self.classifier
            .forward_t(&dropout(features, self.dropout, train)?, train)
    }
}

/// Extractive QA: start and end logits per token from `qa_outputs` (2, H).
#[derive(Clone, Debug)]
pub struct SpanHead {
    qa_outputs: Linear,
}

impl SpanHead {
    pub fn new(hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            qa_outputs: Linear::new(hidden, 2, true, vb.pp("qa_outputs"))?,
        })
    }

    /// (start, end) logits, each (B, T), for hidden states (B, T, H).
    pub fn forward(&self, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
        let logits = self.qa_outputs.forward(hidden)?; // (B, T, 2)
        let start = logits.narrow(2, 0, 1)?.squeeze(2)?; // (B, T)
        let end = logits.narrow(2, 1, 1)?.squeeze(2)?; // (B, T)
        Ok((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two rows of three positions, H = 2: position j of row i holds (10 i + j, -(10 i + j)).
    fn hidden() -> Result<Tensor> {
        let v: Vec<f32> = (0..2)
            .flat_map(|i| (0..3).flat_map(move |j| [(10 * i + j) as f32, -((10 * i + j) as f32)]))
            .collect();
        Tensor::from_vec(v, (2, 3, 2), &Device::Cpu)
    }

    #[test]
    fn cls_is_the_first_position() -> Result<()> {
        let p = Pool::Cls.forward(&hidden()?, None)?.to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![0., 0.], vec![10., -10.]]);
        Ok(())
    }

    #[test]
    fn mean_counts_only_real_tokens() -> Result<()> {
        // Row 0 right-padded (2 real), row 1 left-padded (1 real).
        let mask = vec![vec![1, 1, 0], vec![0, 0, 1]];
        let p = Pool::Mean
            .forward(&hidden()?, Some(&mask))?
            .to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![0.5, -0.5], vec![12., -12.]]);
        // Without a mask: the mean of all three positions.
        let p = Pool::Mean.forward(&hidden()?, None)?.to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![1., -1.], vec![11., -11.]]);
        // Packed segment ids (2) count as real tokens; an all-padding row pools to zeros.
        let mask = vec![vec![1, 2, 2], vec![0, 0, 0]];
        let p = Pool::Mean
            .forward(&hidden()?, Some(&mask))?
            .to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![1., -1.], vec![0., 0.]]);
        Ok(())
    }

    #[test]
    fn last_is_the_last_real_token_under_either_padding() -> Result<()> {
        let mask = vec![vec![1, 1, 0], vec![0, 1, 1]];
        let p = Pool::Last
            .forward(&hidden()?, Some(&mask))?
            .to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![1., -1.], vec![12., -12.]]);
        let p = Pool::Last.forward(&hidden()?, None)?.to_vec2::<f32>()?;
        assert_eq!(p, vec![vec![2., -2.], vec![12., -12.]]);
        Ok(())
    }

    #[test]
    fn pooling_gradients_reach_only_the_pooled_positions() -> Result<()> {
        let x = candle_core::Var::from_tensor(&hidden()?)?;
        let mask = vec![vec![1, 1, 0], vec![0, 1, 1]];
        let grads = Pool::Mean.forward(&x, Some(&mask))?.sum_all()?.backward()?;
        let g = grads.get(&x).map(|g| g.to_vec3::<f32>()).transpose()?;
        let g = g.unwrap_or_default();
        assert_eq!(g[0], vec![vec![0.5, 0.5], vec![0.5, 0.5], vec![0., 0.]]);
        assert_eq!(g[1], vec![vec![0., 0.], vec![0.5, 0.5], vec![0.5, 0.5]]);
        Ok(())
    }

    #[test]
    fn a_mask_of_the_wrong_shape_is_refused() -> Result<()> {
        let err = Pool::Mean.forward(&hidden()?, Some(&[vec![1, 1, 1]])).err();
        assert!(err.is_some_and(|e| e.to_string().contains("1 mask rows for a batch of 2")));
        let err = Pool::Last
            .forward(&hidden()?, Some(&[vec![1, 1, 1], vec![1]]))
            .err();
        assert!(err.is_some_and(|e| e.to_string().contains("mask row 1 has 1 positions")));
        assert_eq!(Pool::from_name("mean"), Some(Pool::Mean));
        assert_eq!(Pool::from_name("max"), None);
        Ok(())
    }
}
