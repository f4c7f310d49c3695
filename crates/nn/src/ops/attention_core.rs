//! Attention's core, `dropout(softmax(q k^T * scale + mask)) v`, in training as one op that
//! keeps no (B, heads, T, S) tensor: the backward recomputes the scores and probabilities from
//! `q` and `k`, and draws the dropout mask again from its seed.
//!
//! Composed, the graph kept the scores and the probabilities of every layer (two tensors of
//! B * heads * T * S floats each: 1.1 GB over SmolLM2's 30 layers on 8 rows of 256 tokens)
//! until the backward pass, and with dropout (BERT's 0.1) two more: the mask and the dropped
//! probabilities. PyTorch's fused attention keeps none of them; this op recomputes them, one
//! more `q k^T` product, softmax and mask per layer in the backward pass.

use super::dropout_mask::dropout_mask_seeded;
use super::kernel::f32_tensor;
use super::softmax::{scaled_masked_softmax, softmax_backward};
use crate::lora_linear::SeededDropout;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

pub(crate) struct AttentionCore {
    /// Queries per row group: `q` is (B, nkv, rep * t, hd), the (B, nh, T, S) scores are its
    /// rows regrouped.
    pub t: usize,
    pub mask: Option<Tensor>,
    pub scale: f64,
    /// On the probabilities: the mask drawn from the seed over (B, nkv, rep * T, S), which is
    /// (B, nh, T, S) in memory.
    pub dropout: Option<SeededDropout>,
}

impl AttentionCore {
    /// The probabilities (B, nkv, rep * T, S) for grouped `q` (B, nkv, rep * T, hd) and `k`.
    fn probs(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let (b, nkv, rows, _) = q.dims4()?;
        let s = k.dim(2)?;
        let nh = nkv * rows / self.t.max(1);
        let scores = q.matmul(&k.t()?)?.reshape((b, nh, self.t, s))?;
        scaled_masked_softmax(&scores, self.mask.as_ref(), self.scale)?.reshape((b, nkv, rows, s))
    }

    /// The dropout's multiplier (0 or `1 / (1 - p)`) over the probabilities' shape, if any.
    fn keep(&self, probs: &Tensor) -> Result<Option<Tensor>> {
        self.dropout
            .map(|d| dropout_mask_seeded(probs.shape(), d.p, DType::F32, probs.device(), d.seed))
            .transpose()
    }
}

impl CustomOp3 for AttentionCore {
    fn name(&self) -> &'static str {
        "attention-core"
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
        let q = f32_tensor(self.name(), s1, l1)?;
        let k = f32_tensor(self.name(), s2, l2)?;
        let v = f32_tensor(self.name(), s3, l3)?;
        let probs = self.probs(&q, &k)?;
        let probs = match self.keep(&probs)? {
            Some(keep) => (probs * keep)?,
            None => probs,
        };
        let out = probs.matmul(&v)?; // (B, nkv, rep * T, hd)
        let shape = out.shape().clone();
        Ok((CpuStorage::F32(out.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = self.grads(q, k, v, grad)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

impl AttentionCore {
    /// The gradients of q, k and v (grouped as the op's inputs) for the output's `grad`, the
    /// probabilities recomputed.
    pub(crate) fn grads(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        grad: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        // Detached: the gradients must hold no graph.
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let grad = grad.detach().contiguous()?; // (B, nkv, rep * T, hd)
        let p = self.probs(&q, &k)?; // (B, nkv, rep * T, S)
        let keep = self.keep(&p)?;
        let dropped = match &keep {
            Some(keep) => (&p * keep)?,
            None => p.clone(),
        };
        let dv = dropped.t()?.matmul(&grad)?; // (B, nkv, S, hd): the rep groups summed
        drop(dropped);
        let dp = grad.matmul(&v.t()?)?; // (B, nkv, rep * T, S): d loss / d dropped
        let dp = match &keep {
            Some(keep) => (dp * keep)?,
            None => dp,
        };
        let ds = softmax_backward(&p, &dp, self.scale)?; // d loss / d (q k^T)
        let dq = ds.matmul(&k)?; // (B, nkv, rep * T, hd)
        let dk = ds.t()?.matmul(&q)?; // (B, nkv, S, hd)
        Ok((dq, dk, dv))
    }
}

/// `dropout(softmax(q k^T * scale + mask)) v` for grouped queries `q` (B, nkv, rep * t, hd)
/// (query head `h * rep + r` at rows `r * t..(r + 1) * t` of kv head `h`), `k`, `v`
/// (B, nkv, S, hd) and an additive `mask` (B, 1, t, S) that trains nothing; f32, gradients for
/// `q`, `k` and `v`. `dropout` (0 < p < 1, else `dropout_mask_seeded`'s error) multiplies the probabilities by
/// `dropout_mask_seeded(shape, p, F32, device, seed)` over their (B, nkv, rep * t, S) shape.
/// Returns (B, nkv, rep * t, hd).
pub fn attention_core(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    t: usize,
    mask: Option<&Tensor>,
    scale: f64,
    dropout: Option<SeededDropout>,
) -> Result<Tensor> {
    let op = AttentionCore {
        t,
        mask: mask.map(|m| m.detach().contiguous()).transpose()?,
        scale,
        dropout,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}
