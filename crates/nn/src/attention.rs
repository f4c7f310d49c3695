//! Scaled dot-product attention with grouped-query heads and additive masks (the KV cache is in
//! [`crate::kv_cache`]).

use crate::layers::{dropout, Linear};
use crate::lora_linear::SeededDropout;
use crate::ops::{self, scaled_masked_softmax};
use candle_core::{DType, Result, Tensor};

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
    let tracked = q.track_op() || k.track_op() || v.track_op();
    let f32 = [q, k, v].iter().all(|x| x.dtype() == DType::F32);
    let drops = p.train && p.dropout > 0.0;
    if tracked && f32 && bias.is_none() && !(drops && p.dropout >= 1.0) {
        // Training: one op that recomputes the probabilities (and draws the dropout mask
        // again from its seed) in its backward pass instead of keeping them in the graph.
        let mask = mask.map(|m| m.to_dtype(DType::F32)).transpose()?;
        let dropout = drops.then(|| SeededDropout {
            p: p.dropout,
            seed: ops::next_dropout_seed(),
        });
        let out = ops::attention_core(&qg, k, v, t, mask.as_ref(), p.scale, dropout)?;
        return out.reshape((b, nh, t, hd));
    }

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

/// [`scaled_dot_product_attention`] for heads side by side, as the projections give them:
/// `q` (B, T, heads * hd), `k` and `v` (B, S, kv_heads * hd) (query head `h` reads kv head
/// `h / (heads / kv_heads)`), `mask` (B, 1, T, S) additive or None. Returns
/// (B, T, heads * hd), as the output projection reads it. f32 on the CPU is one fused op
/// ([`ops::attention_heads`]: no head transposed out and back, no (B, heads, T, S) tensor);
/// other dtypes and devices split the heads out and join them again.
pub fn side_by_side_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (heads, kv_heads): (usize, usize),
    mask: Option<&Tensor>,
    p: AttentionParams,
) -> Result<Tensor> {
    let h = q.dim(2)?;
    if heads == 0 || kv_heads == 0 || !h.is_multiple_of(heads) || !heads.is_multiple_of(kv_heads) {
        candle_core::bail!(
            "attention: {h} values do not split into {heads} heads over {kv_heads} kv heads"
        );
    }
    let f32_cpu = [q, k, v]
        .iter()
        .chain(mask.as_ref())
        .all(|x| x.dtype() == DType::F32 && x.device().is_cpu());
    let drops = p.train && p.dropout > 0.0;
    if f32_cpu && !(drops && p.dropout >= 1.0) {
        let dropout = drops.then(|| SeededDropout {
            p: p.dropout,
            seed: ops::next_dropout_seed(),
        });
        return ops::attention_heads(q, k, v, heads, kv_heads, mask, p.scale, dropout);
    }
    let (q, k, v) = (
        split_heads(q, heads)?,
        split_heads(k, kv_heads)?,
        split_heads(v, kv_heads)?,
    );
    join_heads(&scaled_dot_product_attention(&q, &k, &v, mask, p)?)
}

/// (B, T, heads * hd) -> (B, heads, T, hd), contiguous.
pub(crate) fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, h) = x.dims3()?;
    x.reshape((b, t, heads, h / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// (B, heads, T, hd) -> (B, T, heads * hd), as an output projection reads it.
pub(crate) fn join_heads(x: &Tensor) -> Result<Tensor> {
    let (b, heads, t, hd) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, t, heads * hd))
}

/// Multi-head attention's projections around [`biased_attention`]: queries, keys and values
/// split into heads, and the output projection over the joined heads. Self-attention and
/// cross-attention are the same block: cross-attention takes its keys and values from the
/// encoder output (computed once per source) and the source's mask.
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    head_dim: usize,
    /// Applied to `q k^T` (`1/sqrt(head_dim)`, or 1 for T5).
    scale: f64,
    /// On the attention probabilities, in training.
    dropout: f32,
}

/// The shape of a [`MultiHeadAttention`].
#[derive(Clone, Copy, Debug)]
pub struct HeadLayout {
    pub heads: usize,
    pub head_dim: usize,
    pub scale: f64,
    pub dropout: f32,
}

impl MultiHeadAttention {
    /// From its four projections (`q`, `k`, `v`: model width -> heads x head_dim; `o` back).
    pub fn new(q: Linear, k: Linear, v: Linear, o: Linear, layout: HeadLayout) -> Self {
        Self {
            q,
            k,
            v,
            o,
            heads: layout.heads,
            head_dim: layout.head_dim,
            scale: layout.scale,
            dropout: layout.dropout,
        }
    }

    /// (B, T, H) -> (B, heads, T, head_dim) through `lin`.
    fn split(&self, lin: &Linear, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        lin.forward_t(x, train)?
            .reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// The queries of `x`: (B, heads, T, head_dim).
    pub fn queries(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.split(&self.q, x, train)
    }

    /// The keys and values of `x`: each (B, heads, S, head_dim).
    pub fn keys_values(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split(&self.k, x, train)?,
            self.split(&self.v, x, train)?,
        ))
    }

    /// Attention of queries over keys and values (with an optional score bias and an additive
    /// (B, 1, T, S) mask), heads joined and projected: (B, T, H).
    pub fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let p = AttentionParams {
            scale: self.scale,
            dropout: self.dropout,
            train,
        };
        let out = biased_attention(q, k, v, bias, Some(mask), p)?; // (B, heads, T, hd)
        self.o.forward_t(&join_heads(&out)?, train)
    }
}
