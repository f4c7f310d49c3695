//! `x W^T` for a weight that trains, with a backward pass whose gradients hold no graph.
//!
//! candle's matmul backward computes `dW = grad^T x` from the graph's own tensors, so the
//! gradient is itself a graph node that keeps `grad` (n, out) alive, and a weight's gradient
//! lives until the optimizer step: every linear layer's output gradient stayed in memory to the
//! end of the backward pass and beyond. Here the backward works on detached tensors.

use super::kernel::{f32_slice, linear_backward, matmul_x_wt};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

struct TrainableLinear;

impl CustomOp2 for TrainableLinear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        // In place: copying x and W into tensors and the product out of one took three
        // passes over memory per layer, about as long as a small layer's gemm.
        let (n, k) = l1.shape().dims2()?;
        let (out, _) = l2.shape().dims2()?;
        let x = f32_slice(self.name(), s1, l1)?; // (n, in)
        let w = f32_slice(self.name(), s2, l2)?; // (out, in)
        let y = matmul_x_wt(x, w, n, k, out)?; // (n, out)
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = linear_backward(x, w, grad)?; // (n, in), (out, in)
        Ok((Some(dx), Some(dw)))
    }
}

/// `x W^T` for `x` (n, in) and `W` (out, in), f32, with gradients for both.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, TrainableLinear)
}
