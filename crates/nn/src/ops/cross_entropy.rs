//! Cross-entropy over the last dimension with an ignore index (-100, as PyTorch and
//! transformers use), fused: one pass computes log-sum-exp and the target's logit per row.

use super::kernel::{contiguous_slice, max_lanes, simd, sum_map_lanes, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Label value whose position is not scored.
pub const IGNORE_INDEX: i64 = -100;

fn check_target(t: i64, vocab: usize) -> Result<Option<usize>> {
    if t == IGNORE_INDEX {
        return Ok(None);
    }
    if t < 0 || t as usize >= vocab {
        candle_core::bail!("cross-entropy: label {t} outside 0..{vocab} (and not {IGNORE_INDEX})");
    }
    Ok(Some(t as usize))
}

#[inline(always)]
fn log_sum_exp<T: Elem>(row: &[T]) -> T {
    let max = max_lanes(row);
    max + sum_map_lanes(row, |x| (x - max).fast_exp()).ln()
}

fn ce_forward<T: Elem>(logits: &[T], targets: &[i64], vocab: usize) -> Result<Vec<T>> {
    let targets: Vec<Option<usize>> = targets
        .iter()
        .map(|&t| check_target(t, vocab))
        .collect::<Result<_>>()?;
    let mut out = vec![T::zero(); targets.len()];
    out.par_iter_mut()
        .zip(logits.par_chunks(vocab))
        .zip(targets.par_iter())
        .for_each(|((o, row), t)| {
            if let Some(t) = t {
                *o = simd(|| log_sum_exp(row)) - row[*t];
            }
        });
    Ok(out)
}

fn ce_backward<T: Elem>(logits: &[T], targets: &[i64], grad: &[T], vocab: usize) -> Vec<T> {
    let mut out = vec![T::zero(); logits.len()];
    out.par_chunks_mut(vocab)
        .zip(logits.par_chunks(vocab))
        .zip(targets.par_iter().zip(grad.par_iter()))
        .for_each(|((o, row), (&t, &g))| {
            if t == IGNORE_INDEX {
                return;
            }
            simd(|| {
                let lse = log_sum_exp(row);
                for (o, &x) in o.iter_mut().zip(row) {
                    *o = (x - lse).fast_exp() * g;
                }
            });
            o[t as usize] -= g;
        });
    out
}

fn targets_i64<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [i64]> {
    match s {
        CpuStorage::I64(t) => contiguous_slice("cross-entropy", t, l),
        other => candle_core::bail!(
            "cross-entropy: labels must be i64, got {:?}",
            candle_core::backend::BackendStorage::dtype(other)
        ),
    }
}

struct CrossEntropy;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, vocab) = l1.shape().dims2()?;
        if l2.dims() != [n] {
            candle_core::bail!(
                "cross-entropy: {n} rows of logits but labels {:?}",
                l2.dims()
            );
        }
        let t = targets_i64(s2, l2)?;
        let out = match s1 {
            CpuStorage::F32(x) => {
                to_storage(ce_forward(contiguous_slice(self.name(), x, l1)?, t, vocab)?)
            }
            CpuStorage::F64(x) => {
                to_storage(ce_forward(contiguous_slice(self.name(), x, l1)?, t, vocab)?)
            }
            other => candle_core::bail!(
                "cross-entropy: unsupported dtype {:?}",
                candle_core::backend::BackendStorage::dtype(other)
            ),
        };
        Ok((out, Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = logits.apply_op3_no_bwd(targets, &grad.contiguous()?, &CrossEntropyGrad)?;
        Ok((Some(d), None))
    }
}

struct CrossEntropyGrad;

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
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
        let (_n, vocab) = l1.shape().dims2()?;
        let t = targets_i64(s2, l2)?;
        let n = self.name();
        let out = match (s1, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => to_storage(ce_backward(
                contiguous_slice(n, x, l1)?,
                t,
                contiguous_slice(n, g, l3)?,
                vocab,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => to_storage(ce_backward(
                contiguous_slice(n, x, l1)?,
                t,
                contiguous_slice(n, g, l3)?,
                vocab,
            )),
            _ => candle_core::bail!("cross-entropy-grad: logits and grad dtypes differ"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Per-position loss `-log softmax(logits)[label]`, 0 where the label is -100.
/// `logits`: (N, V); `labels`: (N) i64.
pub fn per_token_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let labels = labels.to_dtype(DType::I64)?.contiguous()?;
    logits.contiguous()?.apply_op2(&labels, CrossEntropy)
}

/// Summed loss over the scored positions of `logits` (.., V) and `labels` (..), with the number
/// of scored positions, so callers can normalise across an accumulated batch.
pub fn masked_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, usize)> {
    let vocab = logits.dim(candle_core::D::Minus1)?;
    let logits = logits.reshape(((), vocab))?;
    let labels = labels.flatten_all()?.to_dtype(DType::I64)?;
    let n_scored = labels
        .to_vec1::<i64>()?
        .iter()
        .filter(|&&t| t != IGNORE_INDEX)
        .count();
    let sum = per_token_cross_entropy(&logits, &labels)?.sum_all()?;
    Ok((sum, n_scored))
}
