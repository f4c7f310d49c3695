//! Softmax over the last dim, and attention's `softmax(scores * scale + mask)` in one pass,
//! each with a fused backward.
//!
//! Unfused, this was an affine pass, a broadcast add of the (B, 1, T, S) mask over the heads
//! (candle's strided broadcast path) and a softmax; the backward took four more passes
//! (mul, sum, broadcast sub, mul). Here each row is read once forward and once backward.

use super::kernel::{
    contiguous_slice, dispatch_float, dispatch_float2, max_lanes, simd, sum_lanes, to_storage, Elem,
};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows handed to one rayon task (rows are short: one per query).
const ROWS_PER_TASK: usize = 32;

/// Softmax of `x * scale + mask` into `out`; a row whose every entry is `-inf` gives zeros.
#[inline(always)]
fn softmax_row<T: Elem>(out: &mut [T], x: &[T], mask: Option<&[T]>, scale: T) {
    match mask {
        Some(m) => out
            .iter_mut()
            .zip(x.iter().zip(m))
            .for_each(|(o, (&x, &m))| *o = x * scale + m),
        None => out.iter_mut().zip(x).for_each(|(o, &x)| *o = x * scale),
    }
    softmax_in_place(out);
}

/// Softmax of `row` in place; a row whose every entry is `-inf` gives zeros.
#[inline(always)]
pub(super) fn softmax_in_place<T: Elem>(row: &mut [T]) {
    let max = max_lanes(row);
    if max == T::neg_infinity() {
        row.iter_mut().for_each(|o| *o = T::zero());
        return;
    }
    row.iter_mut().for_each(|o| *o = (*o - max).fast_exp());
    let inv = T::one() / sum_lanes(row);
    row.iter_mut().for_each(|o| *o *= inv);
}

/// Where the mask rows come from: scores are (B, H, T, S), the mask (B, 1, T, S), so score row
/// `r` reads mask row `(r / (H T)) T + r % T`.
#[derive(Clone, Copy)]
struct MaskRows {
    heads: usize,
    queries: usize,
}

impl MaskRows {
    fn row(&self, r: usize) -> usize {
        (r / (self.heads * self.queries)) * self.queries + r % self.queries
    }
}

fn softmax_rows<T: Elem>(x: &[T], dim: usize, mask: Option<(&[T], MaskRows)>, scale: T) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(x.par_chunks(dim * ROWS_PER_TASK))
        .enumerate()
        .for_each(|(task, (o, x))| {
            simd(|| {
                for (i, (o, x)) in o.chunks_mut(dim).zip(x.chunks(dim)).enumerate() {
                    let m = mask.map(|(m, rows)| {
                        let r = rows.row(task * ROWS_PER_TASK + i);
                        &m[r * dim..(r + 1) * dim]
                    });
                    softmax_row(o, x, m, scale);
                }
            })
        });
    out
}

/// `softmax(x * scale)` over the last dim (no mask).
struct ScaledSoftmax {
    scale: f64,
}

/// `softmax(x * scale + mask)` over the last dim, the mask broadcast over the heads.
struct ScaledMaskedSoftmax {
    scale: f64,
}

fn cast<T: Elem>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::zero)
}

impl CustomOp1 for ScaledSoftmax {
    fn name(&self) -> &'static str {
        "scaled-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dim = layout.dims().last().copied().unwrap_or(1).max(1);
        let out = dispatch_float!(self.name(), storage, |s| {
            let x = contiguous_slice(self.name(), s, layout)?;
            to_storage(softmax_rows(x, dim, None, cast(self.scale)))
        });
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        softmax_backward(res, grad_res, self.scale).map(Some)
    }
}

impl CustomOp2 for ScaledMaskedSoftmax {
    fn name(&self) -> &'static str {
        "scaled-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (b, h, t, s) = l1.shape().dims4()?;
        if l2.dims() != [b, 1, t, s] {
            candle_core::bail!(
                "{n}: mask {:?} does not match scores {:?}; expected [{b}, 1, {t}, {s}]",
                l2.dims(),
                l1.dims()
            );
        }
        let rows = MaskRows {
            heads: h,
            queries: t,
        };
        let out = dispatch_float2!(
            n,
            (s1, l1),
            (s2, l2),
            "scores and mask must share one float dtype",
            |x, m| softmax_rows(x, s, Some((m, rows)), cast(self.scale))
        );
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The mask is a constant: no gradient.
        Ok((Some(softmax_backward(res, grad_res, self.scale)?), None))
    }
}

/// `dx = scale * y * (g - sum(g * y))` per row, for `y = softmax(x * scale + c)`.
struct SoftmaxBackward {
    scale: f64,
}

fn softmax_grad_rows<T: Elem>(y: &[T], g: &[T], dim: usize, scale: T) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    out.par_chunks_mut(dim * ROWS_PER_TASK)
        .zip(
            y.par_chunks(dim * ROWS_PER_TASK)
                .zip(g.par_chunks(dim * ROWS_PER_TASK)),
        )
        .for_each(|(o, (y, g))| {
            simd(|| {
                for (o, (y, g)) in o.chunks_mut(dim).zip(y.chunks(dim).zip(g.chunks(dim))) {
                    let dot = y.iter().zip(g).fold(T::zero(), |acc, (&y, &g)| acc + y * g);
                    o.iter_mut()
                        .zip(y.iter().zip(g))
                        .for_each(|(o, (&y, &g))| *o = scale * y * (g - dot));
                }
            })
        });
    out
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        if l1.dims() != l2.dims() {
            candle_core::bail!("{n}: output {:?} and gradient {:?}", l1.dims(), l2.dims());
        }
        let dim = l1.dims().last().copied().unwrap_or(1).max(1);
        let out = dispatch_float2!(
            n,
            (s1, l1),
            (s2, l2),
            "output and gradient must share one float dtype",
            |y, g| softmax_grad_rows(y, g, dim, cast(self.scale))
        );
        Ok((out, l1.shape().clone()))
    }
}

/// The gradient of a (scaled) softmax with respect to its input, given its output `y` and the
/// gradient `g` of the loss with respect to `y`.
pub(super) fn softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
    y.contiguous()?
        .apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBackward { scale })
}

/// `softmax(scores * scale + mask)` over the last dim. `scores` is (B, H, T, S); `mask`, if
/// given, is additive (B, 1, T, S) and shared by the heads. Rows that are entirely `-inf` give
/// zeros. Gradients flow to `scores` only.
pub fn scaled_masked_softmax(scores: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let scores = scores.contiguous()?;
    match mask {
        Some(m) => scores.apply_op2(&m.contiguous()?, ScaledMaskedSoftmax { scale }),
        None => scores.apply_op1(ScaledSoftmax { scale }),
    }
}

/// Softmax over the last dimension. Rows that are entirely `-inf` give zeros.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    scaled_masked_softmax(xs, None, 1.0)
}
