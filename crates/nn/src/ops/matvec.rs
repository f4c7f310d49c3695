//! `x W^T` for a few rows of `x` (decoding): each output is one streaming dot product over a
//! contiguous row of `W`, with no packing of `W` first. A general gemm packs the whole weight
//! matrix on every call, which for one row costs as much as the product itself. With a
//! backward pass, so it is safe on any path.

use super::kernel::contiguous_slice;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Rows of `x` up to which [`linear_rows`] beats gemm.
pub const MATVEC_MAX_ROWS: usize = 4;

struct MatVec;

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    // 16 independent accumulators so the compiler vectorises the loop.
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_generic(a, b)
}

/// Output rows of one matrix that one parallel task computes.
const ROWS_PER_TASK: usize = 64;

/// `x [W_0; W_1; ...]^T` for `x` (n, k) and row-major (out_i, k) matrices: (n, sum out_i),
/// row-major. Every weight row is read once, for all n rows of `x`; the rows of all the
/// matrices are shared out over the threads in one parallel pass.
fn rows_product(x: &[f32], k: usize, mats: &[&[f32]]) -> Vec<f32> {
    let n = x.len().checked_div(k).unwrap_or(0);
    let outs: Vec<usize> = mats
        .iter()
        .map(|w| w.len().checked_div(k).unwrap_or(0))
        .collect();
    let total: usize = outs.iter().sum();
    let mut tasks = Vec::new();
    let mut col = 0;
    for (mi, &out) in outs.iter().enumerate() {
        for start in (0..out).step_by(ROWS_PER_TASK) {
            tasks.push((mi, start, (start + ROWS_PER_TASK).min(out), col + start));
        }
        col += out;
    }
    let blocks: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(mi, start, end, _)| {
            let w = mats[mi];
            let len = end - start;
            let mut out = vec![0f32; n * len];
            for j in start..end {
                let wr = &w[j * k..(j + 1) * k];
                for i in 0..n {
                    out[i * len + j - start] = dot(&x[i * k..(i + 1) * k], wr);
                }
            }
            out
        })
        .collect();
    let mut y = vec![0f32; n * total];
    for (&(_, start, end, col), block) in tasks.iter().zip(&blocks) {
        let len = end - start;
        for i in 0..n {
            y[i * total + col..i * total + col + len]
                .copy_from_slice(&block[i * len..(i + 1) * len]);
        }
    }
    y
}

impl CustomOp2 for MatVec {
    fn name(&self) -> &'static str {
        "matvec"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l1.shape().dims2()?;
        let (out, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("matvec: x is (_, {k}) but W is ({out}, {k2})");
        }
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("matvec: only f32 is supported");
        };
        let x = contiguous_slice(self.name(), x, l1)?;
        let w = contiguous_slice(self.name(), w, l2)?;
        Ok((
            CpuStorage::F32(rows_product(x, k, &[w])),
            Shape::from((n, out)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = grad.matmul(w)?; // (n, in)
        let dw = grad.t()?.matmul(x)?; // (out, in)
        Ok((Some(dx), Some(dw)))
    }
}

/// `x W^T` for `x` (n, in) and `W` (out, in), f32.
pub fn linear_rows(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, MatVec)
}

/// [`linear_rows`] over several weight matrices at once (q/k/v, gate/up: one input, one pass):
/// `x` (n, in) and each `W_i` (out_i, in) give (n, sum out_i). Inference only: no gradient
/// flows back (the caller uses it only when no weight tracks gradients).
struct GroupMatVec<'a> {
    weights: &'a [&'a Tensor],
}

impl CustomOp1 for GroupMatVec<'_> {
    fn name(&self) -> &'static str {
        "group-matvec"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l.shape().dims2()?;
        let CpuStorage::F32(x) = s else {
            candle_core::bail!("group matvec: only f32 is supported");
        };
        let x = contiguous_slice(self.name(), x, l)?;
        let guards: Vec<_> = self
            .weights
            .iter()
            .map(|w| w.storage_and_layout())
            .collect();
        let mut mats = Vec::with_capacity(guards.len());
        for (g, w) in guards.iter().zip(self.weights) {
            let (out, k2) = w.dims2()?;
            if k2 != k {
                candle_core::bail!("group matvec: x is (_, {k}) but a W is ({out}, {k2})");
            }
            let Storage::Cpu(CpuStorage::F32(data)) = &*g.0 else {
                candle_core::bail!("group matvec: weights must be f32 on the CPU");
            };
            mats.push(contiguous_slice(self.name(), data, g.1)?);
        }
        let total: usize = mats.iter().map(|m| m.len() / k.max(1)).sum();
        Ok((
            CpuStorage::F32(rows_product(x, k, &mats)),
            Shape::from((n, total)),
        ))
    }
}

/// `x [W_0; W_1; ...]^T` for `x` (n, in) and f32 weights (out_i, in), without gradients.
pub fn linear_rows_group(x: &Tensor, weights: &[&Tensor]) -> Result<Tensor> {
    let ws: Vec<Tensor> = weights
        .iter()
        .map(|w| w.contiguous())
        .collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = ws.iter().collect();
    x.contiguous()?
        .apply_op1_no_bwd(&GroupMatVec { weights: &refs })
}
