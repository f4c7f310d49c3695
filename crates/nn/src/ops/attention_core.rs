//! Attention's core, `softmax(q k^T * scale + mask) v`, in training as one op that keeps no
//! (B, heads, T, S) tensor: the backward recomputes the scores and probabilities from `q` and `k`.
//!
//! Composed, the graph kept the scores and the probabilities of every layer (two tensors of
//! B * heads * T * S floats each: 1.1 GB over SmolLM2's 30 layers on 8 rows of 256 tokens)
//! until the backward pass. PyTorch's fused attention keeps neither; this op recomputes them,
//! one more `q k^T` product and softmax per layer in the backward pass.

use super::kernel::f32_tensor;
use super::softmax::{scaled_masked_softmax, softmax_backward};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

struct AttentionCore {
    /// Queries per row group: `q` is (B, nkv, rep * t, hd), the (B, nh, T, S) scores are its
    /// rows regrouped.
    t: usize,
    mask: Option<Tensor>,
    scale: f64,
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
        let out = self.probs(&q, &k)?.matmul(&v)?; // (B, nkv, rep * T, hd)
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
        // Detached: the gradients must hold no graph.
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let grad = grad.detach().contiguous()?; // (B, nkv, rep * T, hd)
        let p = self.probs(&q, &k)?; // (B, nkv, rep * T, S)
        let dv = p.t()?.matmul(&grad)?; // (B, nkv, S, hd): the rep groups summed
        let dp = grad.matmul(&v.t()?)?; // (B, nkv, rep * T, S)
        let ds = softmax_backward(&p, &dp, self.scale)?; // d loss / d (q k^T)
        let dq = ds.matmul(&k)?; // (B, nkv, rep * T, hd)
        let dk = ds.t()?.matmul(&q)?; // (B, nkv, S, hd)
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// `softmax(q k^T * scale + mask) v` for grouped queries `q` (B, nkv, rep * t, hd) (query head
/// `h * rep + r` at rows `r * t..(r + 1) * t` of kv head `h`), `k`, `v` (B, nkv, S, hd) and an
/// additive `mask` (B, 1, t, S) that trains nothing; f32, gradients for `q`, `k` and `v`.
/// Returns (B, nkv, rep * t, hd).
pub fn attention_core(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    t: usize,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let op = AttentionCore {
        t,
        mask: mask.map(|m| m.detach().contiguous()).transpose()?,
        scale,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}
