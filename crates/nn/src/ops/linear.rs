//! `x W^T` for a weight that trains, with a backward pass whose gradients hold no graph.
//!
//! candle's matmul backward computes `dW = grad^T x` from the graph's own tensors, so the
//! gradient is itself a graph node that keeps `grad` (n, out) alive, and a weight's gradient
//! lives until the optimizer step: every linear layer's output gradient stayed in memory to the
//! end of the backward pass and beyond. Here the backward works on detached tensors.

use super::bias::column_sums;
use super::kernel::{f32_slice, linear_backward, matmul_x_wt_plus};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

struct TrainableLinear;

/// `x W^T (+ b)` for the storages of `x` (n, in) and `W` (out, in). In place: copying x and W
/// into tensors and the product out of one took three passes over memory per layer, about as
/// long as a small layer's gemm.
fn forward(
    op: &str,
    (sx, lx): (&CpuStorage, &Layout),
    (sw, lw): (&CpuStorage, &Layout),
    bias: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let (n, k) = lx.shape().dims2()?;
    let (out, _) = lw.shape().dims2()?;
    let x = f32_slice(op, sx, lx)?; // (n, in)
    let w = f32_slice(op, sw, lw)?; // (out, in)
    let y = matmul_x_wt_plus(x, w, bias, n, k, out)?; // (n, out)
    Ok((CpuStorage::F32(y), Shape::from((n, out))))
}

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
        forward(self.name(), (s1, l1), (s2, l2), None)
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

struct TrainableLinearBias;

impl CustomOp3 for TrainableLinearBias {
    fn name(&self) -> &'static str {
        "linear-bias"
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
        let b = f32_slice(self.name(), s3, l3)?; // (out,)
        forward(self.name(), (s1, l1), (s2, l2), Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = linear_backward(x, w, grad)?; // (n, in), (out, in)
        let db = column_sums(grad, b.elem_count())?; // (out,)
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `x W^T + b` for `x` (n, in), `W` (out, in) and `b` (out,), f32, in one gemm that starts from
/// the bias rows (no second pass for the bias), with gradients for all three.
pub fn linear_bias(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, TrainableLinearBias)
}
