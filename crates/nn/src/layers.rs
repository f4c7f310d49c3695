//! Linear, embedding and RMS-norm layers, loaded from a `VarBuilder` under the checkpoint's names.

use crate::lora::{Adapted, LORA_A};
use crate::ops;
use crate::quant::{quantized_matmul, BlockQuantized};
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::sync::Arc;

/// Quantized (GGUF) weight matrices by full parameter name, for inference without
/// dequantizing: a linear layer whose `{prefix}.weight` is here runs a quantized matmul.
pub type QuantizedWeights = HashMap<String, Arc<QTensor>>;

/// How a [`Linear`] holds its (out, in) matrix.
///
/// Every projection of every backbone and head (attention, MLP, pooler, task heads, the LM head,
/// tied or not) is a [`Linear`], loaded by [`Linear::load`] under the checkpoint's own name
/// (`...self_attn.q_proj`), so another way of holding a weight is one variant here and one lookup
/// in [`Linear::load`], and no model file changes:
///
/// - An adapter (LoRA: a frozen base plus a trainable low-rank update) is
///   [`LinearWeight::Adapted`], whose product is `base(x) + scale * B(A(dropout(x)))`, found by
///   `Linear::load` beside the layer's weight (`{prefix}.lora_A.weight`, ...: [`crate::lora`]);
///   the base keeps its own name, so saving the adapter alone (PEFT's
///   `base_model.model.{name}.lora_A.weight`) or merged stays a rename.
/// - A fused projection (q/k/v or gate/up as one matmul) is [`Linear::forward_fused`] over the
///   parts, each still loaded and saved under its own name: with block-quantized weights, or
///   with few rows (decoding) of dense weights that track no gradient, the parts run as one
///   product (the input read and quantized once, one parallel pass over all their rows);
///   otherwise part by part, so training and every other path keep their gradients.
///
/// Marked `non_exhaustive` so that code outside this crate that matches on it keeps compiling
/// when another variant arrives.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LinearWeight {
    /// A float matrix; gradients flow through it when it is a `Var`'s tensor.
    Dense(Tensor),
    /// A GGUF Q8_0/Q4_0/Q4_1 matrix, multiplied with integer dot products ([`crate::quant`]).
    /// Frozen: an input that tracks a gradient gets it through the transposed product (the
    /// weight dequantized panel by panel in the kernel), the weight none.
    BlockQuantized(Arc<BlockQuantized>),
    /// Another GGUF block-quantized matrix (k-quants), through candle's quantized matmul.
    /// Inference only: it passes no gradient, so a tracked input is an error.
    Quantized(QMatMul),
    /// A frozen base (any of the above) plus a LoRA update; gradients flow to A and B when they
    /// are `Var`s' tensors, and never to the base.
    Adapted(Box<Adapted>),
}

/// `y = x W^T + b`, with `W` of shape (out, in) as PyTorch stores it: the one linear layer every
/// model projection goes through, whatever holds the weight ([`LinearWeight`]).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
}

impl Linear {
    /// A dense layer over an (out, in) matrix (a tied LM head passes the embedding table).
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: LinearWeight::Dense(weight),
            bias,
        }
    }

    /// A linear layer over a quantized (out, in) matrix: Q8_0, Q4_0 and Q4_1 on the integer-dot
    /// kernels here, other formats on candle's.
    pub fn from_quantized(weight: Arc<QTensor>, bias: Option<Tensor>) -> Result<Self> {
        let weight = match BlockQuantized::from_qtensor(&weight)? {
            Some(b) => LinearWeight::BlockQuantized(Arc::new(b)),
            None => LinearWeight::Quantized(QMatMul::from_arc(weight)?),
        };
        Ok(Self { weight, bias })
    }

    /// The outputs of several layers that read the same input (q/k/v, gate/up), in order.
    ///
    /// With block-quantized weights, or few rows of `xs` (decoding) and dense f32 weights that
    /// track no gradient, the layers run as one product; otherwise one by one.
    pub fn forward_fused(parts: &[&Linear], xs: &Tensor) -> Result<Vec<Tensor>> {
        Self::forward_fused_t(parts, xs, false)
    }

    /// [`Linear::forward_fused`] with `train` turning on the dropout of adapted parts.
    pub fn forward_fused_t(parts: &[&Linear], xs: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let blocks: Option<Vec<Arc<BlockQuantized>>> = parts
            .iter()
            .map(|l| match &l.weight {
                LinearWeight::BlockQuantized(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        let dense: Option<Vec<&Tensor>> = parts
            .iter()
            .map(|l| match &l.weight {
                LinearWeight::Dense(w) if w.dtype() == DType::F32 && !w.track_op() => Some(w),
                _ => None,
            })
            .collect();
        let in_dim = *xs.dims().last().unwrap_or(&0);
        let rows = xs.elem_count().checked_div(in_dim).unwrap_or(0);
        let joined = match (blocks, dense) {
            (Some(mats), _) if parts.len() > 1 => quantized_matmul(xs, &mats)?,
            (_, Some(ws)) if parts.len() > 1 && rows <= ops::MATVEC_MAX_ROWS => {
                let mut dims = xs.dims().to_vec();
                let y = ops::linear_rows_group(&xs.reshape(((), in_dim))?, &ws)?;
                if let Some(last) = dims.last_mut() {
                    *last = y.dim(1)?;
                }
                y.reshape(dims)?
            }
            _ => return parts.iter().map(|l| l.forward_t(xs, train)).collect(),
        };
        let last = joined.rank() - 1;
        let mut start = 0;
        let mut outs = Vec::with_capacity(parts.len());
        for l in parts {
            let width = l.out_dim()?;
            let y = joined.narrow(last, start, width)?;
            start += width;
            outs.push(l.add_bias(y)?);
        }
        Ok(outs)
    }

    /// Rows of the (out, in) matrix.
    pub fn out_dim(&self) -> Result<usize> {
        weight_out_dim(&self.weight)
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(b) if b.dtype() == y.dtype() && matches!(y.dtype(), DType::F32 | DType::F64) => {
                ops::add_bias(&y.contiguous()?, b)
            }
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// Loads `weight` (and `bias` when `with_bias`) under `vb`.
    pub fn new(in_dim: usize, out_dim: usize, with_bias: bool, vb: VarBuilder) -> Result<Self> {
        Self::load(in_dim, out_dim, with_bias, vb, None)
    }

    /// Like [`Linear::new`], but takes the weight from `quantized` when it holds
    /// `{prefix}.weight`. This is the one place a projection's weight is looked up by name.
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
        let weight = match quantized.and_then(|q| q.get(&name)) {
            Some(q) => {
                if q.shape().dims() != [out_dim, in_dim] {
                    candle_core::bail!(
                        "{name}: quantized shape {:?}, expected [{out_dim}, {in_dim}]",
                        q.shape()
                    );
                }
                Self::from_quantized(q.clone(), None)?.weight
            }
            None => LinearWeight::Dense(vb.get((out_dim, in_dim), "weight")?),
        };
        // Asked of every layer, adapted or not: `lora::linear_layer_names` records the question.
        let weight = if vb.contains_tensor(LORA_A) {
            LinearWeight::Adapted(Box::new(Adapted::load(weight, in_dim, out_dim, &vb)?))
        } else {
            weight
        };
        Ok(Self { weight, bias })
    }

    /// How the weight is held.
    pub fn kind(&self) -> &LinearWeight {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The dense weight, or None for a quantized layer.
    pub fn weight(&self) -> Option<&Tensor> {
        match &self.weight {
            LinearWeight::Dense(w) => Some(w),
            LinearWeight::BlockQuantized(_)
            | LinearWeight::Quantized(_)
            | LinearWeight::Adapted(_) => None,
        }
    }

    /// `x W^T + b`, with `train` turning on an adapter's dropout.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if let (LinearWeight::Dense(w), Some(b)) = (&self.weight, &self.bias) {
            if let Some(y) = dense_product_plus_bias(xs, w, b)? {
                return Ok(y);
            }
        }
        self.add_bias(weight_product(&self.weight, xs, train)?)
    }
}

/// `x W^T + b` as one gemm that starts from the bias rows, where that is the fastest way: f32
/// throughout, more rows than the matrix-vector path takes, and a weight that trains or
/// nothing that does (a frozen weight under a training input computes no weight gradient,
/// which the fused op would). `None` otherwise.
fn dense_product_plus_bias(xs: &Tensor, w: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    let f32 = [xs.dtype(), w.dtype(), b.dtype()]
        .iter()
        .all(|&d| d == DType::F32);
    let tracking_allows = w.track_op() || !(xs.track_op() || b.track_op());
    let in_dim = xs.dims().last().copied().unwrap_or(0);
    let rows = xs.elem_count().checked_div(in_dim).unwrap_or(0);
    if !f32 || !tracking_allows || rows <= ops::MATVEC_MAX_ROWS || b.rank() != 1 {
        return Ok(None);
    }
    over_rows(xs, w, |x2| ops::linear_bias(x2, w, b)).map(Some)
}

/// `product` of the (N, in) rows of `xs` (its leading dims folded into one, so a single gemm
/// runs), reshaped back to `xs`'s leading dims and `w`'s out dim.
fn over_rows(
    xs: &Tensor,
    w: &Tensor,
    product: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut dims = xs.dims().to_vec();
    let in_dim = *dims.last().unwrap_or(&0);
    let y = product(&xs.reshape(((), in_dim))?)?; // (N, out)
    if let Some(last) = dims.last_mut() {
        *last = w.dim(0)?;
    }
    y.reshape(dims)
}

fn weight_out_dim(weight: &LinearWeight) -> Result<usize> {
    match weight {
        LinearWeight::Dense(w) => w.dim(0),
        LinearWeight::BlockQuantized(m) => Ok(m.dims().0),
        LinearWeight::Quantized(q) => match q {
            QMatMul::QTensor(t) => t.shape().dims2().map(|d| d.0),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dim(0),
        },
        LinearWeight::Adapted(a) => weight_out_dim(&a.base),
    }
}

/// `x W^T` without the bias, whatever holds `W`.
pub(crate) fn weight_product(weight: &LinearWeight, xs: &Tensor, train: bool) -> Result<Tensor> {
    match weight {
        LinearWeight::BlockQuantized(m) => quantized_matmul(xs, std::slice::from_ref(m)),
        // candle's quantized matmul has no backward: a gradient through it would silently stop.
        LinearWeight::Quantized(_) if xs.track_op() => candle_core::bail!(
            "a k-quant matrix passes no gradient; requantize it to Q8_0 for training \
             (`tasklm train` does so)"
        ),
        LinearWeight::Quantized(q) => q.forward(xs),
        LinearWeight::Dense(w) => dense_product(xs, w),
        LinearWeight::Adapted(a) => a.forward(xs, train),
    }
}

/// `x W^T` for a float (out, in) matrix over the last axis of `xs`. A weight that tracks no
/// gradient under an input that does (a frozen base in LoRA training) computes the input's
/// gradient only.
pub(crate) fn dense_product(xs: &Tensor, w: &Tensor) -> Result<Tensor> {
    over_rows(xs, w, |x2| {
        let rows = x2.dim(0)?;
        let f32 = w.dtype() == DType::F32 && x2.dtype() == DType::F32;
        if f32 && x2.track_op() && !w.track_op() {
            ops::frozen_linear(x2, w) // (N, out), no weight gradient
        } else if rows <= ops::MATVEC_MAX_ROWS && w.dtype() == DType::F32 {
            ops::linear_rows(x2, w) // (N, out), no packing of W
        } else if f32 && w.track_op() {
            ops::linear(x2, w) // (N, out), a gradient that holds no graph
        } else {
            x2.matmul(&w.t()?) // (N, out)
        }
    })
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_t(xs, false)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;

    #[test]
    fn dense_linear_is_x_w_transpose_plus_bias() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2.], [3., 4.], [0., -1.]], &dev)?; // (out 3, in 2)
        let l = Linear::from_weights(w, Some(Tensor::new(&[0.5f32, 0., 1.], &dev)?));
        let x = Tensor::new(&[[[1f32, 1.], [2., 0.]]], &dev)?; // (1, 2, in)
        let y = l.forward(&x)?.to_vec3::<f32>()?;
        assert_eq!(y, vec![vec![vec![3.5, 7., 0.], vec![2.5, 6., 1.]]]);
        assert!(matches!(l.kind(), LinearWeight::Dense(_)));
        Ok(())
    }

    #[test]
    fn load_takes_the_quantized_matrix_under_the_same_name() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::ones((32, 32), DType::F32, &dev)?;
        let tensors = HashMap::from([(
            "proj.bias".to_string(),
            Tensor::zeros(32, DType::F32, &dev)?,
        )]);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let q = QuantizedWeights::from([(
            "proj.weight".to_string(),
            Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0)?),
        )]);
        let l = Linear::load(32, 32, true, vb.pp("proj"), Some(&q))?;
        assert!(matches!(l.kind(), LinearWeight::BlockQuantized(_)) && l.weight().is_none());
        let y = l.forward(&Tensor::ones((1, 32), DType::F32, &dev)?)?;
        let y = y.to_vec2::<f32>()?;
        // Q8_0 also quantizes the activations: 31.996 for 32.
        assert!(y[0].iter().all(|v| (v - 32.0).abs() < 1e-2), "{y:?}");
        // A quantized matrix of the wrong shape is refused with its name.
        let err = Linear::load(16, 32, true, vb.pp("proj"), Some(&q)).err();
        assert!(err.is_some_and(|e| e.to_string().contains("proj.weight: quantized shape")));
        Ok(())
    }

    #[test]
    fn fused_parts_give_each_parts_own_output() -> Result<()> {
        let dev = Device::Cpu;
        let w = |rows: usize, seed: f64| {
            Tensor::arange(0f32, (rows * 64) as f32, &dev)
                .and_then(|t| (t * seed)?.sin()?.reshape((rows, 64)))
        };
        let x = w(2, 0.7)?.reshape((1, 2, 64))?;
        let bias = Some(Tensor::new(&[1f32; 32], &dev)?);
        let dense = [
            Linear::from_weights(w(64, 0.1)?, None),
            Linear::from_weights(w(32, 0.2)?, bias.clone()),
        ];
        let quant = [
            Linear::from_quantized(
                Arc::new(QTensor::quantize(&w(64, 0.1)?, GgmlDType::Q4_1)?),
                None,
            )?,
            Linear::from_quantized(
                Arc::new(QTensor::quantize(&w(32, 0.2)?, GgmlDType::Q8_0)?),
                bias,
            )?,
        ];
        for parts in [&dense, &quant] {
            let refs: Vec<&Linear> = parts.iter().collect();
            let fused = Linear::forward_fused(&refs, &x)?;
            for (f, l) in fused.iter().zip(parts.iter()) {
                let alone = l.forward(&x)?;
                assert_eq!(f.dims(), alone.dims());
                let gap = (f - &alone)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(gap < 1e-5, "fused vs alone: {gap}");
            }
        }
        Ok(())
    }
}
