//! Linear, embedding and RMS-norm layers, loaded from a `VarBuilder` under the checkpoint's names.

use crate::ops;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::sync::Arc;

/// Quantized (GGUF) weight matrices by full parameter name, for inference without
/// dequantizing: a linear layer whose `{prefix}.weight` is here runs a quantized matmul.
pub type QuantizedWeights = HashMap<String, Arc<QTensor>>;

#[derive(Clone, Debug)]
enum Weight {
    Dense(Tensor),
    /// Inference only: no gradients flow through a quantized matmul.
    Quantized(QMatMul),
}

/// `y = x W^T + b`, with `W` of shape (out, in) as PyTorch stores it.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Dense(weight),
            bias,
        }
    }

    /// A linear layer over a quantized (out, in) matrix.
    pub fn from_quantized(weight: Arc<QTensor>, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            weight: Weight::Quantized(QMatMul::from_arc(weight)?),
            bias,
        })
    }

    /// Loads `weight` (and `bias` when `with_bias`) under `vb`.
    pub fn new(in_dim: usize, out_dim: usize, with_bias: bool, vb: VarBuilder) -> Result<Self> {
        Self::load(in_dim, out_dim, with_bias, vb, None)
    }

    /// Like [`Linear::new`], but takes the weight from `quantized` when it holds it.
    pub fn load(
        in_dim: usize,
        out_dim: usize,
        with_bias: bool,
        vb: VarBuilder,
        quantized: Option<&QuantizedWeights>,
    ) -> Result<Self> {
        let bias = if with_bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        let name = format!("{}.weight", vb.prefix());
        if let Some(q) = quantized.and_then(|q| q.get(&name)) {
            if q.shape().dims() != [out_dim, in_dim] {
                candle_core::bail!(
                    "{name}: quantized shape {:?}, expected [{out_dim}, {in_dim}]",
                    q.shape()
                );
            }
            return Self::from_quantized(q.clone(), bias);
        }
        let weight = vb.get((out_dim, in_dim), "weight")?;
        Ok(Self {
            weight: Weight::Dense(weight),
            bias,
        })
    }

    /// The dense weight, or None for a quantized layer.
    pub fn weight(&self) -> Option<&Tensor> {
        match &self.weight {
            Weight::Dense(w) => Some(w),
            Weight::Quantized(_) => None,
        }
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Weight::Quantized(q) => q.forward(xs)?,
            Weight::Dense(w) => {
                let dims = xs.dims().to_vec();
                let in_dim = *dims.last().unwrap_or(&0);
                // Fold leading dims into one so a single gemm runs over (N, in) x (in, out).
                let x2 = xs.reshape(((), in_dim))?; // (N, in)
                let rows = x2.dim(0)?;
                let y = if rows <= ops::MATVEC_MAX_ROWS && w.dtype() == candle_core::DType::F32 {
                    ops::linear_rows(&x2, w)? // (N, out), no packing of W
                } else {
                    x2.matmul(&w.t()?)? // (N, out)
                };
                let mut out_dims = dims;
                if let Some(last) = out_dims.last_mut() {
                    *last = w.dim(0)?;
                }
                y.reshape(out_dims)?
            }
        };
        match &self.bias {
            Some(b) if b.dtype() == y.dtype() && matches!(y.dtype(), DType::F32 | DType::F64) => {
                ops::add_bias(&y, b)
            }
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Token embedding table (vocab, hidden).
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    pub fn new(vocab: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((vocab, hidden), "weight")?,
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut dims = ids.dims().to_vec();
        dims.push(self.weight.dim(1)?);
        self.weight
            .index_select(&ids.flatten_all()?, 0)?
            .reshape(dims) // (.., H)
    }
}

/// RMS norm with a learned scale, on the fused op.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(hidden: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(hidden, "weight")?,
            eps,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::rms_norm(xs, &self.weight, self.eps)
    }
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by
/// `1 / (1 - p)`; the identity when not training or when `p == 0`.
pub fn dropout(xs: &Tensor, p: f32, train: bool) -> Result<Tensor> {
    if !train || p <= 0.0 {
        return Ok(xs.clone());
    }
    if p >= 1.0 {
        return xs.zeros_like();
    }
    xs * ops::dropout_mask(xs.shape(), p, xs.dtype(), xs.device())? // 0 or 1 / (1 - p)
}

/// Layer norm with a learned scale and shift over the last axis (BERT's post-norm blocks):
/// `(x - mean) / sqrt(var + eps) * weight + bias`, the variance biased as PyTorch's.
///
/// On the fused op, which has a backward pass (candle's fused `layer_norm` has none; see
/// ARCHITECTURE.md).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` under `vb` (BERT's `LayerNorm.weight` / `LayerNorm.bias`).
    pub fn new(hidden: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(hidden, "weight")?,
            bias: vb.get(hidden, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
    }
}
