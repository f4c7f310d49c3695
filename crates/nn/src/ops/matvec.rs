//! `x W^T` for a few rows of `x` (decoding): each output is one streaming dot product over a
//! contiguous row of `W`, with no packing of `W` first. A general gemm packs the whole weight
//! matrix on every call, which for one row costs as much as the product itself. With a
//! backward pass, so it is safe on any path.

use super::kernel::contiguous_slice;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
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
        // Column-major result (out, n), each weight row read once for all n rows of x.
        let mut t = vec![0f32; out * n];
        t.par_chunks_mut(n * 64).enumerate().for_each(|(c, block)| {
            for (jj, o) in block.chunks_mut(n).enumerate() {
                let j = c * 64 + jj;
                let wr = &w[j * k..(j + 1) * k];
                for (i, o) in o.iter_mut().enumerate() {
                    *o = dot(&x[i * k..(i + 1) * k], wr);
                }
            }
        });
        let mut y = vec![0f32; n * out];
        for j in 0..out {
            for i in 0..n {
                y[i * out + j] = t[j * n + i];
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
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
