//! Softmax over the last dimension, fused, with a backward pass.

use super::kernel::{contiguous_slice, dispatch_float, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct SoftmaxLastDim;

fn softmax_rows<T: Elem>(xs: &[T], dim: usize) -> Vec<T> {
    let mut out = vec![T::zero(); xs.len()];
    out.par_chunks_mut(dim)
        .zip(xs.par_chunks(dim))
        .for_each(|(o, x)| {
            let max = x
                .iter()
                .copied()
                .fold(T::neg_infinity(), <T as num_traits::Float>::max);
            if max == T::neg_infinity() {
                // A fully masked row (a padding query): attend to nothing instead of NaN.
                return;
            }
            let mut sum = T::zero();
            for (o, &x) in o.iter_mut().zip(x) {
                *o = (x - max).exp();
                sum += *o;
            }
            let inv = T::one() / sum;
            o.iter_mut().for_each(|o| *o *= inv);
        });
    out
}

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dim = layout.dims().last().copied().unwrap_or(1).max(1);
        let out = dispatch_float!(self.name(), storage, |s| {
            to_storage(softmax_rows(contiguous_slice(self.name(), s, layout)?, dim))
        });
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // dx = y * (g - sum(g * y))
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((res * grad_res.broadcast_sub(&dot)?)?))
    }
}

/// Softmax over the last dimension. Rows that are entirely `-inf` give zeros.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(SoftmaxLastDim)
}
