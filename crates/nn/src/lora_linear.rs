//! A LoRA-adapted linear layer in training as one op: `y = x W^T + scale * B(A(dropout(x)))`
//! over a frozen `W`, whose graph keeps `x`, `A`, `B` and `y` only.
//!
//! Composed from candle ops, the adapter's path kept five more tensors per layer alive until the
//! backward pass (the dropout mask, the dropped input, `h B^T`, its scaled copy and the sum), two
//! of the input's width and three of the output's: more than the base's own activations, so LoRA
//! training peaked above full fine-tuning. This op keeps the dropout's seed instead of its mask,
//! and the backward draws the mask again and recomputes `h = A(dropout(x))`, (n, r), which costs
//! `n * in * r` multiply-adds: small beside the layer's `n * in * out`.

use crate::layers::{weight_product, LinearWeight};
use crate::ops::{dropout_mask_seeded, f32_tensor};
use crate::quant::quantized_matmul_transposed;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// The dropout on the adapter's input: its probability and the seed that draws its mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeededDropout {
    pub p: f32,
    pub seed: u64,
}

struct LoraLinear {
    base: LinearWeight,
    scale: f64,
    dropout: Option<SeededDropout>,
}

impl LoraLinear {
    /// `x` with the dropout applied (the mask drawn from the seed), or `x` itself.
    fn dropped(&self, x: &Tensor) -> Result<Tensor> {
        match self.dropout {
            None => Ok(x.clone()),
            Some(d) => x * dropout_mask_seeded(x.shape(), d.p, DType::F32, x.device(), d.seed)?,
        }
    }

    /// `grad W`: the base's share of the input's gradient.
    fn base_input_grad(&self, grad: &Tensor) -> Result<Tensor> {
        match &self.base {
            LinearWeight::Dense(w) => grad.matmul(w),
            LinearWeight::BlockQuantized(m) => {
                quantized_matmul_transposed(grad, std::slice::from_ref(m))
            }
            _ => candle_core::bail!("lora-linear: the base must be f32 or block-quantized"),
        }
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
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
        let x = f32_tensor(self.name(), s1, l1)?; // (n, in)
        let a = f32_tensor(self.name(), s2, l2)?; // (r, in)
        let b = f32_tensor(self.name(), s3, l3)?; // (out, r)
        let h = self.dropped(&x)?.matmul(&a.t()?)?; // (n, r)
        let delta = h.matmul(&b.t()?)?.affine(self.scale, 0.0)?; // (n, out)
        let y = (weight_product(&self.base, &x, false)? + delta)?; // x tracks nothing here
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Detached: products of the graph's own tensors would be graph nodes themselves, and
        // the gradients returned would keep the recomputed mask and dropped input alive.
        let (x_in, a, b) = (x, a.detach(), b.detach());
        let x = x_in.detach();
        let grad = grad.detach().contiguous()?;
        let xd = self.dropped(&x)?; // (n, in), the mask drawn again
        let h = xd.matmul(&a.t()?)?; // (n, r)
        let grad_h = grad.matmul(&b)?.affine(self.scale, 0.0)?; // (n, r)
        let grad_b = grad.t()?.matmul(&h)?.affine(self.scale, 0.0)?; // (out, r)
        let grad_a = grad_h.t()?.matmul(&xd)?; // (r, in)
        let grad_x = if x_in.track_op() {
            let through_adapter = self.dropped(&grad_h.matmul(&a)?)?; // (n, in), same mask
            Some((self.base_input_grad(&grad)? + through_adapter)?)
        } else {
            None
        };
        Ok((grad_x, Some(grad_a), Some(grad_b)))
    }
}

/// `x W^T + scale * B(A(dropout(x)))` for `x` (n, in), `a` (r, in), `b` (out, r), all f32, and a
/// frozen `base` (a dense f32 or block-quantized (out, in) matrix), with gradients for `x`, `a`
/// and `b`. `dropout` None is the identity (inference, or p = 0).
pub fn lora_linear(
    x: &Tensor,
    base: &LinearWeight,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    dropout: Option<SeededDropout>,
) -> Result<Tensor> {
    let base = match base {
        LinearWeight::Dense(w) if w.dtype() == DType::F32 => {
            LinearWeight::Dense(w.detach().contiguous()?)
        }
        LinearWeight::BlockQuantized(m) => LinearWeight::BlockQuantized(m.clone()),
        _ => candle_core::bail!("lora-linear: the base must be f32 or block-quantized"),
    };
    let op = LoraLinear {
        base,
        scale,
        dropout: dropout.filter(|d| d.p > 0.0),
    };
    x.contiguous()?
        .apply_op3(&a.contiguous()?, &b.contiguous()?, op)
}
