//! Attention over heads laid side by side: `q` (B, T, nh * hd), `k` and `v` (B, S, nkv * hd)
//! (query head `h` reads kv head `h / (nh / nkv)`), as the projections give them, and the
//! output (B, T, nh * hd), as the output projection reads it. One task per (row, head) computes `dropout(softmax(q k^T * scale + mask)) v` with
//! two single-threaded gemms that read the head's columns in place (row stride nh * hd) and a
//! (T, S) score block of its own, so no head is transposed out and back and no
//! (B, nh, T, S) tensor is made. The backward pass recomputes the probabilities through
//! [`AttentionCore`](super::attention_core) on the heads split out.

use super::attention_core::AttentionCore;
use super::dropout_mask::apply_dropout_block;
use super::kernel::{f32_slice, simd};
use super::softmax::softmax_in_place;
use crate::attention::{join_heads, split_heads};
use crate::lora_linear::SeededDropout;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct AttentionHeads {
    heads: usize,
    kv_heads: usize,
    /// The additive mask (B, 1, T, S), contiguous f32.
    mask: Option<Tensor>,
    scale: f64,
    dropout: Option<SeededDropout>,
}

/// The output buffer, shared by the tasks: each writes only its own head's columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the tasks write disjoint (row, head) column blocks of one buffer that outlives them.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Shapes of one call: `b` rows, `t` queries, `s` keys, `nh` query heads over `nkv` kv heads
/// of `hd` values.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    s: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
}

impl AttentionHeads {
    fn dims(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Dims> {
        let (b, t, h) = q.shape().dims3()?;
        let (kb, s, kh) = k.shape().dims3()?;
        let (nh, nkv) = (self.heads, self.kv_heads);
        if nh == 0 || nkv == 0 || !h.is_multiple_of(nh) || !nh.is_multiple_of(nkv) {
            candle_core::bail!(
                "attention heads: {h} values do not split into {nh} heads over {nkv} kv heads"
            );
        }
        let hd = h / nh;
        if kb != b || kh != nkv * hd || v.shape().dims() != k.shape().dims() {
            candle_core::bail!(
                "attention heads: q {:?}, k {:?} and v {:?} must be (B, T, {nh} x hd), (B, S, {nkv} x hd), (B, S, {nkv} x hd)",
                q.shape(),
                k.shape(),
                v.shape()
            );
        }
        if let Some(m) = &self.mask {
            if m.dims() != [b, 1, t, s] {
                candle_core::bail!(
                    "attention heads: mask {:?}, want ({b}, 1, {t}, {s})",
                    m.shape()
                );
            }
        }
        Ok(Dims {
            b,
            t,
            s,
            nh,
            nkv,
            hd,
        })
    }

    /// One (row, head) block: scores, softmax, dropout, then `probs v` into `out`.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        d: Dims,
        task: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: Option<&[f32]>,
        out: OutPtr,
        probs: &mut [f32],
    ) {
        let (bi, head) = (task / d.nh, task % d.nh);
        let (h, hkv) = (d.nh * d.hd, d.nkv * d.hd);
        let kv_head = head / (d.nh / d.nkv);
        let (q_at, kv_at) = (bi * d.t * h + head * d.hd, bi * d.s * hkv + kv_head * d.hd);
        // SAFETY: q is (B, T, nh * hd) and k (B, S, nkv * hd), checked in `dims`; the head's
        // blocks start at q_at / kv_at, rows h / hkv apart, hd columns: every index read is
        // inside the slices. probs holds T * S values.
        unsafe {
            gemm::gemm(
                d.t,
                d.s,
                d.hd,
                probs.as_mut_ptr(),
                1,
                d.s as isize,
                false,
                q.as_ptr().add(q_at),
                1,
                h as isize,
                k.as_ptr().add(kv_at),
                hkv as isize,
                1,
                0.0,
                self.scale as f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        simd(|| {
            for (i, row) in probs.chunks_mut(d.s).enumerate() {
                // The row is already scaled (by the gemm): add the mask, then softmax.
                if let Some(m) = mask {
                    let m = &m[(bi * d.t + i) * d.s..(bi * d.t + i + 1) * d.s];
                    row.iter_mut().zip(m).for_each(|(x, m)| *x += m);
                }
                softmax_in_place(row);
            }
        });
        if let Some(drop) = self.dropout {
            // The mask `dropout_mask_seeded` draws over (B, nh, T, S): this block's part.
            simd(|| apply_dropout_block(task * d.t * d.s, probs, drop.p, drop.seed));
        }
        // SAFETY: v is (B, S, nkv * hd) like k; out is (B, T, nh * hd) like q and this task
        // alone writes the head's hd columns of its row's T rows.
        unsafe {
            gemm::gemm(
                d.t,
                d.hd,
                d.s,
                out.0.add(q_at),
                1,
                h as isize,
                false,
                probs.as_ptr(),
                1,
                d.s as isize,
                v.as_ptr().add(kv_at),
                1,
                hkv as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

impl CustomOp3 for AttentionHeads {
    fn name(&self) -> &'static str {
        "attention-heads"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l1, l2, l3)?;
        let (q, k, v) = (
            f32_slice(self.name(), s1, l1)?,
            f32_slice(self.name(), s2, l2)?,
            f32_slice(self.name(), s3, l3)?,
        );
        let guard = self.mask.as_ref().map(|m| m.storage_and_layout());
        let mask = match &guard {
            Some((storage, layout)) => match &**storage {
                candle_core::Storage::Cpu(c) => Some(f32_slice(self.name(), c, layout)?),
                _ => candle_core::bail!("attention heads: the mask must be on the CPU"),
            },
            None => None,
        };
        let mut out = vec![0f32; d.b * d.t * d.nh * d.hd];
        let ptr = OutPtr(out.as_mut_ptr());
        (0..d.b * d.nh).into_par_iter().for_each_init(
            || vec![0f32; d.t * d.s],
            |probs, task| self.block(d, task, q, k, v, mask, ptr, probs),
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, h) = q.dims3()?;
        let (nh, nkv) = (self.heads, self.kv_heads);
        let core = AttentionCore {
            t,
            mask: self.mask.clone(),
            scale: self.scale,
            dropout: self.dropout,
        };
        // AttentionCore's grouped queries: (B, nh, T, hd) is (B, nkv, rep * T, hd) in memory.
        let grouped = split_heads(&q.detach(), nh)?.reshape((b, nkv, (nh / nkv) * t, h / nh))?;
        let (dq, dk, dv) = core.grads(
            &grouped,
            &split_heads(&k.detach(), nkv)?,
            &split_heads(&v.detach(), nkv)?,
            &split_heads(&grad.detach(), nh)?.reshape(grouped.shape())?,
        )?;
        Ok((
            Some(join_heads(&dq.reshape((b, nh, t, h / nh))?)?),
            Some(join_heads(&dk)?),
            Some(join_heads(&dv)?),
        ))
    }
}

/// `dropout(softmax(q k^T * scale + mask)) v` per head for `q` (B, T, heads * hd) and `k`,
/// `v` (B, S, kv_heads * hd), heads side by side as the projections give them (query head `h`
/// reads kv head `h / (heads / kv_heads)`); `mask` (B, 1, T, S) is additive and trains
/// nothing; `dropout` multiplies the probabilities by `dropout_mask_seeded((B, heads, T, S),
/// p, F32, Cpu, seed)`. f32 on the CPU, gradients for q, k and v. Returns (B, T, heads * hd).
#[allow(clippy::too_many_arguments)]
pub fn attention_heads(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    mask: Option<&Tensor>,
    scale: f64,
    dropout: Option<SeededDropout>,
) -> Result<Tensor> {
    if let Some(d) = dropout {
        if !(d.p > 0.0 && d.p < 1.0) {
            candle_core::bail!("attention heads: dropout {} is not in (0, 1)", d.p);
        }
    }
    let op = AttentionHeads {
        heads,
        kv_heads,
        mask: mask.map(|m| m.detach().contiguous()).transpose()?,
        scale,
        dropout,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}
