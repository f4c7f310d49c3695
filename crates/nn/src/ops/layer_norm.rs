//! Layer norm (`(x - mean) / sqrt(var + eps) * w + b`, Ba et al. 2016), fused, with a fused
//! backward pass that gives dx, dw and db in one sweep over the rows.

use super::kernel::{contiguous_slice, simd, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows handled by one parallel task (their dw/db partial sums are added at the end).
const ROWS_PER_TASK: usize = 16;

/// (mean, 1/sqrt(var + eps)) of one row, the variance biased as PyTorch's.
#[inline(always)]
fn moments<T: Elem>(x: &[T], eps: T) -> (T, T) {
    let n = T::from(x.len()).unwrap_or_else(T::one);
    let mean = x.iter().fold(T::zero(), |a, &v| a + v) / n;
    let var = x
        .iter()
        .fold(T::zero(), |a, &v| a + (v - mean) * (v - mean))
        / n;
    (mean, T::one() / (var + eps).sqrt())
}

fn forward<T: Elem>(x: &[T], w: &[T], b: &[T], eps: f64) -> Vec<T> {
    let dim = w.len();
    let eps = T::from(eps).unwrap_or_else(T::zero);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, x)| {
            simd(|| {
                let (mean, rstd) = moments(x, eps);
                for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (x - mean) * rstd * w + b;
                }
            })
        });
    out
}

/// `[dx (N*H) | dw (H) | db (H)]` for rows `x` (N, H), weight `w` and upstream `g`.
fn backward<T: Elem>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let dim = w.len();
    let eps = T::from(eps).unwrap_or_else(T::zero);
    let n = T::from(dim).unwrap_or_else(T::one);
    let mut out = vec![T::zero(); x.len() + 2 * dim];
    let (dx, _) = out.split_at_mut(x.len());
    let chunk = ROWS_PER_TASK * dim;
    let (dw, db) = dx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(g.par_chunks(chunk)))
        .map(|(dx, (x, g))| {
            simd(|| {
                let (mut dw, mut db) = (vec![T::zero(); dim], vec![T::zero(); dim]);
                for ((dx, x), g) in dx.chunks_mut(dim).zip(x.chunks(dim)).zip(g.chunks(dim)) {
                    let (mean, rstd) = moments(x, eps);
                    // dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
                    let (mut s1, mut s2) = (T::zero(), T::zero());
                    for i in 0..dim {
                        let xhat = (x[i] - mean) * rstd;
                        let gw = g[i] * w[i];
                        s1 += gw;
                        s2 += gw * xhat;
                        dw[i] += g[i] * xhat;
                        db[i] += g[i];
                    }
                    let (m1, m2) = (s1 / n, s2 / n);
                    for i in 0..dim {
                        let xhat = (x[i] - mean) * rstd;
                        dx[i] = rstd * (g[i] * w[i] - m1 - xhat * m2);
                    }
                }
                (dw, db)
            })
        })
        .reduce(
            || (vec![T::zero(); dim], vec![T::zero(); dim]),
            |(mut aw, mut ab), (bw, bb)| {
                aw.iter_mut().zip(&bw).for_each(|(a, &b)| *a += b);
                ab.iter_mut().zip(&bb).for_each(|(a, &b)| *a += b);
                (aw, ab)
            },
        );
    let tail = &mut out[x.len()..];
    tail[..dim].copy_from_slice(&dw);
    tail[dim..].copy_from_slice(&db);
    out
}

fn check_dims(op: &str, lx: &Layout, lw: &Layout, l3: &Layout) -> Result<usize> {
    let dim = lx.dims().last().copied().unwrap_or(0);
    if lw.dims() != [dim] {
        candle_core::bail!("{op}: weight {:?} does not match hidden {dim}", lw.dims());
    }
    if l3.dims() != [dim] && l3.dims() != lx.dims() {
        candle_core::bail!(
            "{op}: third input {:?} does not fit {:?}",
            l3.dims(),
            lx.dims()
        );
    }
    Ok(dim)
}

struct LayerNorm {
    eps: f64,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm"
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
        let n = self.name();
        check_dims(n, l1, l2, l3)?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => to_storage(forward(
                contiguous_slice(n, x, l1)?,
                contiguous_slice(n, w, l2)?,
                contiguous_slice(n, b, l3)?,
                self.eps,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => to_storage(forward(
                contiguous_slice(n, x, l1)?,
                contiguous_slice(n, w, l2)?,
                contiguous_slice(n, b, l3)?,
                self.eps,
            )),
            _ => candle_core::bail!("layer-norm: input, weight and bias must share f32 or f64"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let all = x.apply_op3_no_bwd(w, &grad.contiguous()?, &LayerNormGrad { eps: self.eps })?;
        let (len, dim) = (x.elem_count(), w.elem_count());
        let dx = all.narrow(0, 0, len)?.reshape(x.shape())?;
        let dw = all.narrow(0, len, dim)?;
        let db = all.narrow(0, len + dim, dim)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormGrad {
    eps: f64,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "layer-norm-grad"
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
        let n = self.name();
        let dim = check_dims(n, l1, l2, l3)?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(g)) => to_storage(backward(
                contiguous_slice(n, x, l1)?,
                contiguous_slice(n, w, l2)?,
                contiguous_slice(n, g, l3)?,
                self.eps,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(g)) => to_storage(backward(
                contiguous_slice(n, x, l1)?,
                contiguous_slice(n, w, l2)?,
                contiguous_slice(n, g, l3)?,
                self.eps,
            )),
            _ => candle_core::bail!("layer-norm-grad: inputs must share f32 or f64"),
        };
        Ok((out, Shape::from(l1.shape().elem_count() + 2 * dim)))
    }
}

/// Layer norm over the last dimension with a learned scale `w` and shift `b`, each `(H,)`.
pub fn layer_norm(xs: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if xs.dtype() != DType::F32 && xs.dtype() != DType::F64 {
        candle_core::bail!("layer-norm: unsupported dtype {:?}", xs.dtype());
    }
    let w = w.to_dtype(xs.dtype())?.contiguous()?;
    let b = b.to_dtype(xs.dtype())?.contiguous()?;
    xs.contiguous()?.apply_op3(&w, &b, LayerNorm { eps })
}
