//! Scaled dot-product attention with grouped-query heads, additive masks and a KV cache.

use crate::layers::dropout;
use crate::ops::scaled_masked_softmax;
use candle_core::{Result, Tensor};

/// The mask builders live in [`crate::mask`]; re-exported here so `attention::attention_mask`
/// keeps working.
pub use crate::mask::{attention_mask, positions_from_mask};

/// Per-layer cache of keys and values, each (B, n_kv, S, hd).
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }

    /// Number of cached positions.
    pub fn seq_len(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Appends this step's keys and values to layer `i` and returns the full ones.
    pub fn append(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if i >= self.layers.len() {
            self.layers.resize(i + 1, None);
        }
        let kv = match &self.layers[i] {
            None => (k.clone(), v.clone()),
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
        };
        self.layers[i] = Some(kv.clone());
        Ok(kv)
    }

    /// Keeps only the batch rows in `rows` (used when finished rows leave a batch).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

/// Parameters of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    pub scale: f64,
    pub dropout: f32,
    pub train: bool,
}

/// `softmax(q k^T * scale + mask) v` with grouped-query heads.
///
/// `q`: (B, nh, T, hd); `k`, `v`: (B, nkv, S, hd) with `nh` a multiple of `nkv`;
/// `mask`: (B, 1, T, S) additive, or None. Returns (B, nh, T, hd).
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    p: AttentionParams,
) -> Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let (_, nkv, s, _) = k.dims4()?;
    if nh % nkv != 0 {
        candle_core::bail!("attention: {nh} query heads are not a multiple of {nkv} kv heads");
    }
    let rep = nh / nkv;
    // Query heads h*rep..(h+1)*rep share kv head h: fold them into the row axis instead of
    // copying k and v `rep` times.
    let qg = q.contiguous()?.reshape((b, nkv, rep * t, hd))?; // (B, nkv, rep*T, hd)

    // The scores (B, nkv, rep*T, S) are (B, nh, T, S) in memory: head h*rep+r at rows
    // r*T..(r+1)*T of kv head h.
    let scores = qg.matmul(&k.t()?)?.reshape((b, nh, t, s))?;
    let mask = mask.map(|m| m.to_dtype(scores.dtype())).transpose()?;
    let probs = scaled_masked_softmax(&scores, mask.as_ref(), p.scale)?; // (B, nh, T, S)
    let probs = dropout(&probs, p.dropout, p.train)?.reshape((b, nkv, rep * t, s))?;
    let out = probs.matmul(&v.contiguous()?)?; // (B, nkv, rep*T, hd)
    out.reshape((b, nh, t, hd))
}
