//! Rotary position embedding (Su et al. 2021, RoFormer), the "rotate half" layout that
//! transformers' Llama uses (`modeling_llama.apply_rotary_pos_emb`), fused, with a backward pass.

use super::kernel::{contiguous_slice, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct Rope;

/// `x`: (B, T, H, D); `cos`, `sin`: (B, T, D/2).
fn rope_kernel<T: Elem>(
    x: &[T],
    cos: &[T],
    sin: &[T],
    dims: (usize, usize, usize, usize),
) -> Vec<T> {
    let (_b, _t, h, d) = dims;
    let half = d / 2;
    let mut out = vec![T::zero(); x.len()];
    // One chunk per (b, t): all heads share that position's angles.
    out.par_chunks_mut(h * d)
        .zip(x.par_chunks(h * d))
        .enumerate()
        .for_each(|(bt, (o, x))| {
            let c = &cos[bt * half..(bt + 1) * half];
            let s = &sin[bt * half..(bt + 1) * half];
            for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                for i in 0..half {
                    let (x1, x2) = (x[i], x[i + half]);
                    o[i] = x1 * c[i] - x2 * s[i];
                    o[i + half] = x2 * c[i] + x1 * s[i];
                }
            }
        });
    out
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "rope"
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
        let (b, t, h, d) = l1.shape().dims4()?;
        if d % 2 != 0 || l2.dims() != [b, t, d / 2] || l3.dims() != [b, t, d / 2] {
            candle_core::bail!(
                "rope: x {:?} needs cos/sin of shape [{b}, {t}, {}], got {:?} / {:?}",
                l1.dims(),
                d / 2,
                l2.dims(),
                l3.dims()
            );
        }
        let n = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(c), CpuStorage::F32(s)) => {
                to_storage(rope_kernel(
                    contiguous_slice(n, x, l1)?,
                    contiguous_slice(n, c, l2)?,
                    contiguous_slice(n, s, l3)?,
                    (b, t, h, d),
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(c), CpuStorage::F64(s)) => {
                to_storage(rope_kernel(
                    contiguous_slice(n, x, l1)?,
                    contiguous_slice(n, c, l2)?,
                    contiguous_slice(n, s, l3)?,
                    (b, t, h, d),
                ))
            }
            _ => candle_core::bail!("rope: x, cos and sin must share one float dtype (f32 or f64)"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The rotation is orthogonal: its transpose is the rotation by -theta.
        let dx = rope(grad, cos, &sin.neg()?)?;
        Ok((Some(dx), None, None))
    }
}

/// Rotates `x` of shape (B, T, H, D) by the angles whose cos/sin are (B, T, D/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope)
}
