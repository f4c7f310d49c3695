//! Bidirectional encoders (BERT family) and their batch input.

pub mod bert;

use candle_core::{Device, Tensor};

/// One encoder batch: right-padded ids with their segment (token type) ids.
#[derive(Clone, Debug)]
pub struct EncoderInput {
    /// (B, T) u32 token ids.
    pub input_ids: Tensor,
    /// (B, T) u32 segment ids: 0 for the first text, 1 for the second of a pair.
    pub token_type_ids: Tensor,
    /// `key_mask[b][j]` is 1 for a real token and 0 for padding.
    pub key_mask: Vec<Vec<u8>>,
}

impl EncoderInput {
    /// Right-pads `rows` (ids, token types) with `pad_id` to the longest row.
    pub fn right_padded(
        rows: &[(Vec<u32>, Vec<u32>)],
        pad_id: u32,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let t = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let (mut ids, mut types) = (Vec::with_capacity(rows.len() * t), Vec::new());
        let mut key_mask = Vec::with_capacity(rows.len());
        for (i, (row_ids, row_types)) in rows.iter().enumerate() {
            if row_ids.len() != row_types.len() {
                candle_core::bail!(
                    "row {i}: {} ids but {} token types",
                    row_ids.len(),
                    row_types.len()
                );
            }
            let pad = t - row_ids.len();
            ids.extend_from_slice(row_ids);
            ids.extend(std::iter::repeat_n(pad_id, pad));
            types.extend_from_slice(row_types);
            types.extend(std::iter::repeat_n(0, pad));
            let mut m = vec![1u8; row_ids.len()];
            m.extend(std::iter::repeat_n(0u8, pad));
            key_mask.push(m);
        }
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (rows.len(), t), device)?,
            token_type_ids: Tensor::from_vec(types, (rows.len(), t), device)?,
            key_mask,
        })
    }
}
