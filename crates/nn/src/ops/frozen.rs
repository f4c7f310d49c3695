//! `x W^T` for a weight that trains no gradient (a LoRA adapter's frozen base, a frozen tied
//! head): the backward computes the input's gradient only.
//!
//! candle's matmul backward, and [`super::linear_rows`]'s, compute the weight's gradient too,
//! as costly as the forward product, even when the weight is not a `Var`. Here the weight is a
//! field of the op, not one of its inputs, so autograd never asks for its gradient.

use super::kernel::{f32_slice, matmul_x_wt};
use super::matvec::{linear_rows, MATVEC_MAX_ROWS};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

struct FrozenLinear {
    w: Tensor,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l.shape().dims2()?;
        if n > MATVEC_MAX_ROWS {
            // One gemm reading x and W in place (no copies in or out).
            let (out, _) = self.w.dims2()?;
            let (storage, layout) = self.w.storage_and_layout();
            let candle_core::Storage::Cpu(w) = &*storage else {
                candle_core::bail!("frozen-linear: the weight must be on the CPU");
            };
            let w = f32_slice(self.name(), w, layout)?;
            let y = matmul_x_wt(f32_slice(self.name(), s, l)?, w, n, k, out)?;
            return Ok((CpuStorage::F32(y), Shape::from((n, out))));
        }
        let x = super::f32_tensor(self.name(), s, l)?; // (n, in)
        let y = linear_rows(&x, &self.w)?; // (n, out)
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
