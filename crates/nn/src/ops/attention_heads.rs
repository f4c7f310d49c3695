//! Attention over heads laid side by side: `q` (B, T, nh * hd), `k` and `v` (B, S, nh * hd),
//! as the projections give them, and the output (B, T, nh * hd), as the output projection
//! reads it. One task per (row, head) computes `dropout(softmax(q k^T * scale + mask)) v` with
//! two single-threaded gemms that read the head's columns in place (row stride nh * hd) and a
//! (T, S) score block of its own, so no head is transposed out and back and no
//! (B, nh, T, S) tensor is made. The backward pass recomputes the probabilities through
//! [`AttentionCore`](super::attention_core) on the heads split out.

use super::attention_core::AttentionCore;
use super::dropout_mask::keep_multipliers;
use super::kernel::{f32_slice, max_lanes, simd, sum_lanes, Elem};
use crate::lora_linear::SeededDropout;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct AttentionHeads {
    heads: usize,
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

/// Shapes of one call: `b` rows, `t` queries, `s` keys, `nh` heads of `hd` values.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    s: usize,
    nh: usize,
    hd: usize,
}

impl AttentionHeads {
    fn dims(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Dims> {
        let (b, t, h) = q.shape().dims3()?;
        let (kb, s, kh) = k.shape().dims3()?;
        if (kb, kh) != (b, h) || v.shape().dims() != k.shape().dims() {
            candle_core::bail!(
                "attention heads: q {:?}, k {:?} and v {:?} must be (B, T, H), (B, S, H), (B, S, H)",
                q.shape(),
                k.shape(),
                v.shape()
            );
        }
        if self.heads == 0 || !h.is_multiple_of(self.heads) {
            candle_core::bail!(
                "attention heads: {h} values do not split into {} heads",
                self.heads
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
            nh: self.heads,
            hd: h / self.heads,
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
        let h = d.nh * d.hd;
        let (q_at, kv_at) = (bi * d.t * h + head * d.hd, bi * d.s * h + head * d.hd);
        // SAFETY: q is (B, T, H) and k (B, S, H), checked in `dims`; the head's block starts at
        // q_at / kv_at, rows H apart, hd columns: every index read is inside the slices. probs
        // holds T * S values.
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
                h as isize,
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
                let m = mask.map(|m| &m[(bi * d.t + i) * d.s..(bi * d.t + i + 1) * d.s]);
                softmax_in_place(row, m);
            }
        });
        if let Some(drop) = self.dropout {
            // The mask `dropout_mask_seeded` draws over (B, nh, T, S): this block's part.
            let mut keep = vec![0f32; probs.len()];
            keep_multipliers(task * d.t * d.s, &mut keep, drop.p, drop.seed);
            simd(|| probs.iter_mut().zip(&keep).for_each(|(p, k)| *p *= k));
        }
        // SAFETY: v is (B, S, H) like k; out is (B, T, H) like q and this task alone writes the
        // head's hd columns of its row's T rows.
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
                h as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    /// The heads split out, (B, T, H) -> (B, nh, T, hd), for the backward pass.
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        x.reshape((b, t, self.heads, h / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }
}

/// `softmax(row + mask)` in place (the row is already scaled); a row that is `-inf`
/// everywhere becomes zeros.
#[inline(always)]
fn softmax_in_place(row: &mut [f32], mask: Option<&[f32]>) {
    if let Some(m) = mask {
        row.iter_mut().zip(m).for_each(|(x, m)| *x += m);
    }
    let max = max_lanes(row);
    if max == f32::NEG_INFINITY {
        row.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    row.iter_mut().for_each(|x| *x = (*x - max).fast_exp());
    let inv = 1.0 / sum_lanes(row);
    row.iter_mut().for_each(|x| *x *= inv);
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
        let s = k.dim(1)?;
        let core = AttentionCore {
            t,
            mask: self.mask.clone(),
            scale: self.scale,
            dropout: self.dropout,
        };
        let split = |x: &Tensor| self.split(&x.detach());
        let (dq, dk, dv) = core.grads(&split(q)?, &split(k)?, &split(v)?, &split(grad)?)?;
        let join = |x: Tensor, rows: usize| x.transpose(1, 2)?.contiguous()?.reshape((b, rows, h));
        Ok((Some(join(dq, t)?), Some(join(dk, s)?), Some(join(dv, s)?)))
    }
}

/// `dropout(softmax(q k^T * scale + mask)) v` per head for `q` (B, T, nh * hd) and `k`, `v`
/// (B, S, nh * hd), heads side by side as the projections give them; `mask` (B, 1, T, S) is
/// additive and trains nothing; `dropout` multiplies the probabilities by
/// `dropout_mask_seeded((B, nh, T, S), p, F32, Cpu, seed)`. f32 on the CPU, gradients for q, k
/// and v. Returns (B, T, nh * hd).
pub fn attention_heads(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
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
        mask: mask.map(|m| m.detach().contiguous()).transpose()?,
        scale,
        dropout,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}
