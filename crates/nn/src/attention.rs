//! Scaled dot-product attention with grouped-query heads and additive masks (the KV cache is in
//! [`crate::kv_cache`]).

use crate::layers::dropout;
use crate::ops::scaled_masked_softmax;
use candle_core::{Device, Result, Tensor};

/// The cache moved to [`crate::kv_cache`]; this path keeps working.
pub use crate::kv_cache::KvCache;

/// Additive attention mask (B, 1, T, S) for `t` new queries over `past + t` keys: 0 where a
/// query may attend, `-inf` elsewhere. Keys are visible when causal order allows it
/// (or always, when `causal` is false) and `key_mask[b][j] != 0`.
///
/// A non-zero `key_mask` value is a segment id: packed rows number their samples 1, 2, ...
/// and a query sees only keys of its own segment (a block-diagonal mask), so packed samples do
/// not attend to each other. Unpacked rows use 1 throughout.
pub fn attention_mask(
    key_mask: &[Vec<u8>],
    t: usize,
    causal: bool,
    device: &Device,
) -> Result<Tensor> {
    let b = key_mask.len();
    let s = key_mask.first().map(|r| r.len()).unwrap_or(0);
    if s < t {
        candle_core::bail!("attention mask: {s} keys for {t} queries");
    }
    let past = s - t;
    let mut data = vec![0f32; b * t * s];
    for (bi, row) in key_mask.iter().enumerate() {
        if row.len() != s {
            candle_core::bail!(
                "attention mask: row {bi} has {} keys, expected {s}",
                row.len()
            );
        }
        for i in 0..t {
            let seg = row[past + i];
            let out = &mut data[(bi * t + i) * s..(bi * t + i + 1) * s];
            for (j, o) in out.iter_mut().enumerate() {
                let same_segment = row[j] == seg || seg == 0;
                let visible = row[j] != 0 && same_segment && (!causal || j <= past + i);
                if !visible {
                    *o = f32::NEG_INFINITY;
                }
            }
        }
    }
    Tensor::from_vec(data, (b, 1, t, s), device)
}

/// Position ids for the last `t` of the keys in `key_mask`: the count of real tokens of the
/// same segment before each one, so a left-padded row gets the same positions as the row alone
/// and each packed sample starts again at 0.
pub fn positions_from_mask(key_mask: &[Vec<u8>], t: usize) -> Vec<Vec<u32>> {
    key_mask
        .iter()
        .map(|row| {
            // A real token's position is the number of real tokens before it; padding gets 0.
            let mut seen = 0u32;
            let mut segment = 0u8;
            let pos: Vec<u32> = row
                .iter()
                .map(|&m| {
                    if m == 0 {
                        return 0;
                    }
                    if m != segment {
                        segment = m;
                        seen = 0;
                    }
                    seen += 1;
                    seen - 1
                })
                .collect();
            pos[row.len().saturating_sub(t)..].to_vec()
        })
        .collect()
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
