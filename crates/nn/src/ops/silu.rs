//! SiLU (`x * sigmoid(x)`) and the SwiGLU product `silu(gate) * up` (Shazeer 2020), fused,
//! each with a backward pass.

use super::kernel::{contiguous_slice, dispatch_float, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 4096;

fn silu_scalar<T: Elem>(x: T) -> T {
    x / (T::one() + (-x).fast_exp())
}

fn sigmoid(x: &Tensor) -> Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// d silu(x) / dx = s * (1 + x * (1 - s)), s = sigmoid(x).
fn silu_grad(x: &Tensor) -> Result<Tensor> {
    let s = sigmoid(x)?;
    let one_minus = s.affine(-1.0, 1.0)?;
    &s * ((x * one_minus)? + 1.0)?
}

struct Silu;

impl CustomOp1 for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = dispatch_float!(self.name(), storage, |s| {
            let x = contiguous_slice(self.name(), s, layout)?;
            let mut out = vec![Default::default(); x.len()];
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &x)| *o = silu_scalar(x)));
            to_storage(out)
        });
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((grad * silu_grad(arg)?)?))
    }
}

struct SiluMul;

fn silu_mul_kernel<T: Elem>(g: &[T], u: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); g.len()];
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| {
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = silu_scalar(g) * u;
            }
        });
    out
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            candle_core::bail!(
                "silu-mul: gate {:?} and up {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let n = self.name();
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(u)) => to_storage(silu_mul_kernel(
                contiguous_slice(n, g, l1)?,
                contiguous_slice(n, u, l2)?,
            )),
            (CpuStorage::F64(g), CpuStorage::F64(u)) => to_storage(silu_mul_kernel(
                contiguous_slice(n, g, l1)?,
                contiguous_slice(n, u, l2)?,
            )),
            _ => candle_core::bail!("silu-mul: gate and up must share one float dtype"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d_gate = ((grad * up)? * silu_grad(gate)?)?;
        let d_up = (grad * silu(gate)?)?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

/// `x * sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Silu)
}

/// `silu(gate) * up`, the SwiGLU activation, in one pass over memory.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMul)
}
