//! LoRA adapters (Hu et al. 2021, <https://arxiv.org/abs/2106.09685>), as PEFT's `lora.Linear`
//! computes them: `y = base(x) + scale * B(A(dropout(x)))`, A of shape (r, in), B (out, r),
//! `scale = alpha / r` (or `alpha / sqrt(r)` with rsLoRA, Kalajdzievski 2023).
//!
//! An adapter is found by [`crate::Linear::load`] beside the layer's own weight, in the same
//! name-keyed map the `VarBuilder` reads: `{prefix}.lora_A.weight`, `{prefix}.lora_B.weight`,
//! and two scalars, `{prefix}.lora_scale` and `{prefix}.lora_dropout` ([`LoraSpec::layer_tensors`]
//! writes all four). Every backbone and head loads its projections through `Linear::load`, so
//! each gets adapters with no code of its own; the names are PEFT's without its
//! `base_model.model.` prefix.

use crate::layers::{dense_product, dropout, weight_product, LinearWeight};
use crate::lora_linear::{lora_linear, SeededDropout};
use crate::ops::{next_dropout_seed, splitmix64};
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What PEFT puts before a base model's own parameter names in `adapter_model.safetensors`.
pub const PEFT_PREFIX: &str = "base_model.model.";
/// The adapter's down projection beside `{prefix}.weight`.
pub const LORA_A: &str = "lora_A.weight";
/// The adapter's up projection.
pub const LORA_B: &str = "lora_B.weight";
/// A scalar: the factor on `B(A(x))`.
pub const LORA_SCALE: &str = "lora_scale";
/// A scalar: the dropout probability on the adapter's input (training only).
pub const LORA_DROPOUT: &str = "lora_dropout";

/// The hyper-parameters of one adapter, as `adapter_config.json` holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraSpec {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// rsLoRA: scale by `alpha / sqrt(r)` instead of `alpha / r`.
    pub rslora: bool,
}

impl LoraSpec {
    /// The factor on `B(A(x))`.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// The four tensors under `prefix` that make [`crate::Linear::load`] build an adapted layer.
    pub fn layer_tensors(
        &self,
        prefix: &str,
        a: Tensor,
        b: Tensor,
    ) -> Result<Vec<(String, Tensor)>> {
        let device = a.device().clone();
        let scalar = |v: f64| Tensor::new(v as f32, &device);
        Ok(vec![
            (format!("{prefix}.{LORA_A}"), a),
            (format!("{prefix}.{LORA_B}"), b),
            (format!("{prefix}.{LORA_SCALE}"), scalar(self.scale())?),
            (
                format!("{prefix}.{LORA_DROPOUT}"),
                scalar(f64::from(self.dropout))?,
            ),
        ])
    }

    /// A fresh adapter for an (out, in) layer, as PEFT initialises it: A Kaiming-uniform
    /// (`kaiming_uniform_(a=sqrt(5))`, i.e. uniform in ±1/sqrt(in)), B zero, so the adapted layer
    /// computes what the base does. `seed` picks A's draw.
    pub fn fresh(
        &self,
        out_dim: usize,
        in_dim: usize,
        seed: u64,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        if self.r == 0 {
            candle_core::bail!("LoRA rank r must be at least 1");
        }
        let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
        let mut state = seed;
        let values: Vec<f32> = (0..self.r * in_dim)
            .map(|_| {
                let unit = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
                ((2.0 * unit - 1.0) * bound) as f32
            })
            .collect();
        let a = Tensor::from_vec(values, (self.r, in_dim), device)?;
        let b = Tensor::zeros((out_dim, self.r), DType::F32, device)?;
        Ok((a, b))
    }
}

/// A frozen base weight with a low-rank update ([`LinearWeight::Adapted`]).
#[derive(Clone, Debug)]
pub struct Adapted {
    pub(crate) base: LinearWeight,
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f32,
}

impl Adapted {
    /// Reads the adapter beside `base` under `vb` (an (out, in) layer); errors name the tensor.
    pub(crate) fn load(
        base: LinearWeight,
        in_dim: usize,
        out_dim: usize,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let name = |n: &str| format!("{}.{n}", vb.prefix());
        let a = vb.get_unchecked(LORA_A)?;
        let r = a.dim(0)?;
        if a.dims() != [r, in_dim] || r == 0 {
            candle_core::bail!(
                "{}: shape {:?}, expected [r >= 1, {in_dim}]",
                name(LORA_A),
                a.dims()
            );
        }
        let b = vb.get_unchecked(LORA_B)?;
        if b.dims() != [out_dim, r] {
            candle_core::bail!(
                "{}: shape {:?}, expected [{out_dim}, {r}]",
                name(LORA_B),
                b.dims()
            );
        }
        let scalar = |n: &str| -> Result<f64> {
            vb.get((), n)
                .and_then(|t| t.to_dtype(DType::F64)?.to_scalar::<f64>())
                .map_err(|e| candle_core::Error::msg(format!("{}: {e}", name(n))))
        };
        Ok(Self {
            base,
            a,
            b,
            scale: scalar(LORA_SCALE)?,
            dropout: scalar(LORA_DROPOUT)? as f32,
        })
    }

    /// The frozen weight.
    pub fn base(&self) -> &LinearWeight {
        &self.base
    }

    /// A (r, in): the down projection.
    pub fn a(&self) -> &Tensor {
        &self.a
    }

    /// B (out, r): the up projection.
    pub fn b(&self) -> &Tensor {
        &self.b
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `base(x) + scale * B(A(dropout(x)))`, dropout in training only. When a gradient is
    /// tracked (training) over an f32 or block-quantized base, one fused op
    /// ([`crate::lora_linear`]) that keeps no intermediate tensor for the backward pass.
    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let fusable_base = match &self.base {
            LinearWeight::Dense(w) => w.dtype() == DType::F32 && !w.track_op(),
            LinearWeight::BlockQuantized(_) => true,
            LinearWeight::Quantized(_) | LinearWeight::Adapted(_) => false,
        };
        let tracked = xs.track_op() || self.a.track_op() || self.b.track_op();
        let f32 = [xs, &self.a, &self.b]
            .iter()
            .all(|t| t.dtype() == DType::F32);
        if !(fusable_base && tracked && f32) {
            return weight_product(&self.base, xs, train)? + self.delta(xs, train)?;
        }
        let dims = xs.dims().to_vec();
        let in_dim = *dims.last().unwrap_or(&0);
        let dropout = (train && self.dropout > 0.0).then(|| SeededDropout {
            p: self.dropout,
            seed: next_dropout_seed(),
        });
        let x2 = xs.reshape(((), in_dim))?; // (N, in)
        let y = lora_linear(&x2, &self.base, &self.a, &self.b, self.scale, dropout)?;
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.b.dim(0)?;
        }
        y.reshape(out_dims)
    }

    /// `scale * B(A(dropout(x)))`, dropout in training only.
    pub(crate) fn delta(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let x = dropout(xs, self.dropout, train)?;
        let h = dense_product(&x, &self.a)?; // (.., r)
        dense_product(&h, &self.b)?.affine(self.scale, 0.0) // (.., out)
    }

    /// `W + scale * B A`, the weight with the adapter folded in, for a dense base.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let LinearWeight::Dense(w) = &self.base else {
            candle_core::bail!("only a dense base weight can have its adapter merged");
        };
        let delta = self.b.matmul(&self.a)?.affine(self.scale, 0.0)?; // (out, in)
        w + delta.to_dtype(w.dtype())?
    }
}

/// A `VarBuilder` backend that records the layers [`crate::Linear::load`] builds: each asks
/// whether an adapter sits beside its weight, and that question names it.
struct Recording {
    tensors: HashMap<String, Tensor>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl SimpleBackend for Recording {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        SimpleBackend::get(&self.tensors, s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        SimpleBackend::get_unchecked(&self.tensors, name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        if let Some(prefix) = name.strip_suffix(&format!(".{LORA_A}")) {
            if let Ok(mut asked) = self.asked.lock() {
                asked.push(prefix.to_string());
            }
        }
        SimpleBackend::contains_tensor(&self.tensors, name)
    }
}

/// The names of every [`crate::Linear`] that `build` loads over `tensors` (an embedding table
/// or a tied head is not one), in load order: what LoRA targets are matched against.
pub fn linear_layer_names<T>(
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> Result<T>,
) -> Result<Vec<String>> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let backend = Recording {
        tensors,
        asked: asked.clone(),
    };
    build(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ))?;
    let names = asked
        .lock()
        .map_err(|_| candle_core::Error::msg("linear layer names: poisoned lock"))?
        .clone();
    Ok(names)
}
