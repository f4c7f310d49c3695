//! Gradients of a fixed parameter list, summed over micro-batches before one update.

use crate::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

/// One optional gradient per parameter, in the order of the parameter list.
#[derive(Clone, Debug)]
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// No gradient yet for any of `n` parameters.
    pub fn zeros(n: usize) -> Self {
        Self {
            grads: vec![None; n],
        }
    }

    /// The gradients of `vars` in `store` (a parameter the loss does not reach gets None).
    pub fn from_store(store: &GradStore, vars: &[Var]) -> Self {
        Self {
            grads: vars
                .iter()
                .map(|v| store.get(v.as_tensor()).cloned())
                .collect(),
        }
    }

    /// Adds another micro-batch's gradients.
    pub fn add(&mut self, other: Gradients) -> Result<()> {
        for (acc, g) in self.grads.iter_mut().zip(other.grads) {
            *acc = match (acc.take(), g) {
                (Some(a), Some(g)) => Some((a + g)?),
                (a, g) => a.or(g),
            };
        }
        Ok(())
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) -> Result<()> {
        for g in self.grads.iter_mut().flatten() {
            *g = (&*g * factor)?;
        }
        Ok(())
    }

    /// The global L2 norm (accumulated in f64); NaN or Inf when a gradient is not finite.
    pub fn norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for g in self.grads.iter().flatten() {
            sq += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(sq.sqrt())
    }

    /// Scales the gradients so their global norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_`; returns the norm before clipping. Non-finite
    /// gradients are left as they are (the caller refuses the update).
    pub fn clip(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.norm()?;
        if norm.is_finite() {
            let coef = max_norm / (norm + 1e-6);
            if coef < 1.0 {
                self.scale(coef)?;
            }
        }
        Ok(norm)
    }

    /// The gradient of parameter `i`.
    pub fn get(&self, i: usize) -> Option<&Tensor> {
        self.grads.get(i).and_then(|g| g.as_ref())
    }

    pub fn len(&self) -> usize {
        self.grads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}
