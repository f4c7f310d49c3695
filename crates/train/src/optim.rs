//! AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), as
//! `torch.optim.AdamW` computes it, with no weight decay on norms and biases (rank-1 parameters,
//! the rule transformers' Trainer applies), and its state exposed for exact resume.

use crate::fused_adamw::{MomentUpdate, ParamUpdate};
use crate::{Gradients, Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

pub struct AdamW {
    slots: Vec<Slot>,
    cfg: AdamWConfig,
    step: u64,
}

impl AdamW {
    /// One slot per named parameter; rank-1 parameters (norm scales, biases) get no decay.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                let decay = var.as_tensor().rank() >= 2;
                Ok(Slot {
                    name,
                    var,
                    m,
                    v,
                    decay,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            cfg,
            step: 0,
        })
    }

    /// Number of updates taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The parameters, in the order [`Gradients`] for [`AdamW::step_with`] must follow.
    pub fn vars(&self) -> Vec<Var> {
        self.slots.iter().map(|s| s.var.clone()).collect()
    }

    /// Applies one update with learning rate `lr`. Parameters without a gradient are skipped.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let grads = Gradients::from_store(grads, &self.vars());
        self.step_with(&grads, lr)
    }

    /// [`AdamW::step`] with gradients in the order of [`AdamW::vars`].
    pub fn step_with(&mut self, grads: &Gradients, lr: f64) -> Result<()> {
        if grads.len() != self.slots.len() {
            return Err(TrainError::State(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.slots.len()
            )));
        }
        self.step += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(g) = grads.raw(i) else {
                continue;
            };
            let g = g.contiguous()?;
            for (moment, beta, squared) in [(&s.m, c.beta1, false), (&s.v, c.beta2, true)] {
                moment.inplace_op2(
                    &g,
                    &MomentUpdate {
                        beta,
                        grad_scale: grads.factor(),
                        squared,
                    },
                )?;
            }
            let decay = if s.decay { c.weight_decay } else { 0.0 };
            s.var.as_tensor().inplace_op3(
                &s.m,
                &s.v,
                &ParamUpdate {
                    decay: 1.0 - lr * decay,
                    step_size: lr / bc1,
                    bc2_sqrt: bc2.sqrt(),
                    eps: c.eps,
                },
            )?;
        }
        Ok(())
    }

    /// The state to checkpoint: `m.{name}`, `v.{name}` and the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.clone());
            out.insert(format!("v.{}", s.name), s.v.clone());
        }
        (out, self.step)
    }

    /// Restores [`AdamW::state`]; every parameter's moments must be present with its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for s in &mut self.slots {
            for (key, slot) in [("m", &mut s.m), ("v", &mut s.v)] {
                let k = format!("{key}.{}", s.name);
                let t = state
                    .get(&k)
                    .ok_or_else(|| TrainError::State(format!("missing `{k}`")))?;
                if t.dims() != s.var.as_tensor().dims() {
                    return Err(TrainError::State(format!(
                        "`{k}` has shape {:?}, parameter has {:?}",
                        t.dims(),
                        s.var.as_tensor().dims()
                    )));
                }
                // A copy: the update writes the moments in place.
                *slot = t.to_dtype(s.var.as_tensor().dtype())?.copy()?;
            }
        }
        self.step = step;
        Ok(())
    }
}
