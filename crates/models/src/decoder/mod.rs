//! Decoder-only backbones and the contract the generation loop and trainers use.

pub mod llama;

use candle_core::{Device, Tensor};
use tasklm_nn::KvCache;

/// One forward call: new tokens plus the key mask over cached + new positions.
#[derive(Clone, Debug)]
pub struct DecoderInput {
    /// (B, T) u32 token ids.
    pub input_ids: Tensor,
    /// `key_mask[b][j]` is 1 for a real key and 0 for padding, over `past + T` keys.
    pub key_mask: Vec<Vec<u8>>,
}

impl DecoderInput {
    /// Unpadded rows of equal length, with no cache.
    pub fn from_rows(rows: &[Vec<u32>], device: &Device) -> candle_core::Result<Self> {
        let t = rows.first().map(|r| r.len()).unwrap_or(0);
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Ok(Self {
            input_ids: Tensor::from_vec(flat, (rows.len(), t), device)?,
            key_mask: vec![vec![1; t]; rows.len()],
        })
    }

    /// Left-pads `rows` with `pad_id` to one length; returns the input and each row's padding.
    pub fn left_padded(
        rows: &[Vec<u32>],
        pad_id: u32,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(rows.len() * t);
        let mut key_mask = Vec::with_capacity(rows.len());
        for r in rows {
            let pad = t - r.len();
            flat.extend(std::iter::repeat_n(pad_id, pad));
            flat.extend_from_slice(r);
            let mut m = vec![0u8; pad];
            m.extend(std::iter::repeat_n(1u8, r.len()));
            key_mask.push(m);
        }
        Ok(Self {
            input_ids: Tensor::from_vec(flat, (rows.len(), t), device)?,
            key_mask,
        })
    }
}

/// A causal language model: hidden states in, next-token logits out.
pub trait CausalLm {
    /// Hidden states (B, T, H) for `input`, appending to `cache` when given.
    fn forward_hidden(
        &self,
        input: &DecoderInput,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> candle_core::Result<Tensor>;
    /// Logits (.., V) for hidden states (.., H).
    fn lm_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor>;
    /// Logits of the last position of each row: (B, V).
    fn last_logits(
        &self,
        input: &DecoderInput,
        cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let h = self.forward_hidden(input, cache, false)?; // (B, T, H)
        let t = h.dim(1)?;
        self.lm_logits(&h.narrow(1, t - 1, 1)?.squeeze(1)?) // (B, V)
    }
    fn new_cache(&self) -> KvCache;
    /// The context window in tokens.
    fn max_context(&self) -> usize;
    fn vocab_size(&self) -> usize;
    fn device(&self) -> &Device;
}
