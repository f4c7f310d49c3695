//! `x W^T` for a weight that trains no gradient (a LoRA adapter's frozen base, a frozen tied
//! head): the backward computes the input's gradient only.
//!
//! candle's matmul backward, and [`super::linear_rows`]'s, compute the weight's gradient too,
//! as costly as the forward product, even when the weight is not a `Var`. Here the weight is a
//! field of the op, not one of its inputs, so autograd never asks for its gradient.

use super::matvec::{linear_rows, MATVEC_MAX_ROWS};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

struct FrozenLinear {
    w: Tensor,
}

/// The forward product, with the kernels a dense [`crate::Linear`] uses.
fn product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dim(0)? <= MATVEC_MAX_ROWS {
        linear_rows(x, w) // (n, out)
    } else {
        x.matmul(&w.t()?) // (n, out)
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = super::f32_tensor(self.name(), s, l)?; // (n, in)
        let y = product(&x, &self.w)?; // (n, out)
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?)) // (n, out) x (out, in) = (n, in)
    }
}

/// `x W^T` for `x` (n, in) and a frozen `W` (out, in), f32, with a gradient for `x` only.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let w = w.detach().contiguous()?;
    x.contiguous()?.apply_op1(FrozenLinear { w })
}
