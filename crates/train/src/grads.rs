//! Gradients of a fixed parameter list, summed over micro-batches before one update.

use crate::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

/// One optional gradient per parameter, in the order of the parameter list, times a common
/// factor kept apart (normalisation and clipping only change the factor; the optimizer applies
/// it while it reads the gradient, so no gradient-sized tensor is rewritten).
#[derive(Clone, Debug)]
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
    factor: f64,
}

impl Gradients {
    /// No gradient yet for any of `n` parameters.
    pub fn zeros(n: usize) -> Self {
        Self {
            grads: vec![None; n],
            factor: 1.0,
        }
    }

    /// The gradients of `vars` in `store` (a parameter the loss does not reach gets None).
    pub fn from_store(store: &GradStore, vars: &[Var]) -> Self {
        Self {
            grads: vars
                .iter()
                .map(|v| store.get(v.as_tensor()).cloned())
                .collect(),
            factor: 1.0,
        }
    }

    /// Adds another micro-batch's gradients (both with factor 1).
    pub fn add(&mut self, other: Gradients) -> Result<()> {
        if self.factor != 1.0 || other.factor != 1.0 {
            return Err(crate::TrainError::State(
                "gradients are added before they are scaled".into(),
            ));
        }
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
        self.factor *= factor;
        Ok(())
    }

    /// The common factor of the stored gradients.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The global L2 norm; NaN or Inf when a gradient is not finite. Each tensor's sum of
    /// squares is taken in its own dtype (as torch's `clip_grad_norm_` does), then summed in f64.
    pub fn norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for g in self.grads.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
        Ok(sq.sqrt() * self.factor.abs())
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

    /// The gradient of parameter `i` (the stored tensor times the factor).
    pub fn get(&self, i: usize) -> Result<Option<Tensor>> {
        match self.raw(i) {
            Some(g) if self.factor != 1.0 => Ok(Some((g * self.factor)?)),
            g => Ok(g.cloned()),
        }
    }

    /// The stored gradient of parameter `i`, without the factor.
    pub fn raw(&self, i: usize) -> Option<&Tensor> {
        self.grads.get(i).and_then(|g| g.as_ref())
    }

    pub fn len(&self) -> usize {
        self.grads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}
