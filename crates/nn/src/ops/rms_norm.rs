//! RMS norm (`x / sqrt(mean(x^2) + eps) * w`, Zhang & Sennrich 2019), fused, with a backward pass.

use super::kernel::{contiguous_slice, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct RmsNorm {
    eps: f64,
}

fn rms_norm_rows<T: Elem>(xs: &[T], w: &[T], eps: f64) -> Vec<T> {
    let dim = w.len();
    let eps = T::from(eps).unwrap_or_else(T::zero);
    let mut out = vec![T::zero(); xs.len()];
    out.par_chunks_mut(dim)
        .zip(xs.par_chunks(dim))
        .for_each(|(o, x)| {
            let sq = x.iter().fold(T::zero(), |acc, &v| acc + v * v);
            let n = T::from(dim).unwrap_or_else(T::one);
            let r = T::one() / (sq / n + eps).sqrt();
            for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                *o = x * r * w;
            }
        });
    out
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dim = l1.dims().last().copied().unwrap_or(0);
        if l2.dims() != [dim] {
            candle_core::bail!(
                "rms-norm: weight shape {:?} does not match hidden {dim}",
                l2.dims()
            );
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => to_storage(rms_norm_rows(
                contiguous_slice(self.name(), x, l1)?,
                contiguous_slice(self.name(), w, l2)?,
                self.eps,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(w)) => to_storage(rms_norm_rows(
                contiguous_slice(self.name(), x, l1)?,
                contiguous_slice(self.name(), w, l2)?,
                self.eps,
            )),
            _ => candle_core::bail!("rms-norm: input and weight must both be f32 or both f64"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Detached, so that the gradients hold no graph (see `super::linear`).
        let (x, w, grad) = (&x.detach(), &w.detach(), &grad.detach());
        // r = 1/sqrt(mean(x^2)+eps), xhat = x*r
        // dw = sum_rows(g * xhat); dx = r * (g*w - xhat * mean(g*w*xhat))
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?
            .sqrt()?
            .recip()?;
        let xhat = x.broadcast_mul(&r)?;
        let rank = x.rank();
        let gw = grad.broadcast_mul(w)?;
        let dw = (grad * &xhat)?.flatten_to(rank.saturating_sub(2))?;
        let dw = if rank >= 2 { dw.sum(0)? } else { dw };
        let m = (&gw * &xhat)?.mean_keepdim(D::Minus1)?;
        let dx = (gw - xhat.broadcast_mul(&m)?)?.broadcast_mul(&r)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// RMS norm over the last dimension with a learned scale `w` of shape `(H,)`.
pub fn rms_norm(xs: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let w = if w.dtype() == xs.dtype() {
        w.clone()
    } else {
        w.to_dtype(xs.dtype())?
    };
    if xs.dtype() != DType::F32 && xs.dtype() != DType::F64 {
        candle_core::bail!("rms-norm: unsupported dtype {:?}", xs.dtype());
    }
    xs.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps })
}
