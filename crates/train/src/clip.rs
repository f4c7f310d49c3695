//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`.

use crate::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Var};

/// Scales all gradients of `vars` so their global L2 norm is at most `max_norm`; returns the
/// norm before clipping (NaN or Inf when a gradient is not finite, leaving gradients as they are).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return Ok(norm);
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}
