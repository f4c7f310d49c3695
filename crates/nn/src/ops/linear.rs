//! `x W^T` for a weight that trains, with a backward pass whose gradients hold no graph.
//!
//! candle's matmul backward computes `dW = grad^T x` from the graph's own tensors, so the
//! gradient is itself a graph node that keeps `grad` (n, out) alive, and a weight's gradient
//! lives until the optimizer step: every linear layer's output gradient stayed in memory to the
//! end of the backward pass and beyond. Here the backward works on detached tensors.

use super::kernel::contiguous_slice;
use candle_core::{CpuStorage, CustomOp2, Device, Layout, Result, Shape, Tensor};

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
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("linear: only f32 is supported");
        };
        let x = Tensor::from_slice(
            contiguous_slice(self.name(), x, l1)?,
            l1.shape(),
            &Device::Cpu,
        )?;
        let w = Tensor::from_slice(
            contiguous_slice(self.name(), w, l2)?,
            l2.shape(),
            &Device::Cpu,
        )?;
        let y = x.matmul(&w.t()?)?; // (n, out)
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (x, w, grad) = (x.detach(), w.detach(), grad.detach());
        let dx = grad.matmul(&w)?; // (n, in)
        let dw = grad.t()?.matmul(&x)?; // (out, in)
        Ok((Some(dx), Some(dw)))
    }
}

/// `x W^T` for `x` (n, in) and `W` (out, in), f32, with gradients for both.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, TrainableLinear)
}
