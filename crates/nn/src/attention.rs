//! Scaled dot-product attention with grouped-query heads and additive masks (the KV cache is in
//! [`crate::kv_cache`]).

use crate::layers::dropout;
use crate::ops::scaled_masked_softmax;
use candle_core::{Result, Tensor};

/// The mask builders live in [`crate::mask`]; re-exported here so `attention::attention_mask`
/// keeps working.
pub use crate::mask::{attention_mask, positions_from_mask};

/// The cache moved to [`crate::kv_cache`]; this path keeps working.
pub use crate::kv_cache::KvCache;

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
    biased_attention(q, k, v, None, mask, p)
}

/// [`scaled_dot_product_attention`] with an additive, differentiable score bias broadcast to
/// (B, nh, T, S) (T5's relative position bias, one per head), added to `q k^T` before the scale
/// and the mask.
pub fn biased_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
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
    let scores = match bias {
        Some(bias) => scores.broadcast_add(bias)?,
        None => scores,
    };
    let mask = mask.map(|m| m.to_dtype(scores.dtype())).transpose()?;
    let probs = scaled_masked_softmax(&scores, mask.as_ref(), p.scale)?; // (B, nh, T, S)
    let probs = dropout(&probs, p.dropout, p.train)?.reshape((b, nkv, rep * t, s))?;
    let out = probs.matmul(&v.contiguous()?)?; // (B, nkv, rep*T, hd)
    out.reshape((b, nh, t, hd))
}
