//! Adding a bias row to every row (`y + b`), with a backward pass whose bias gradient is a
//! parallel column sum (candle's broadcast backward reduces over the rows with a strided loop,
//! a large share of an encoder step).

use super::kernel::{contiguous_slice, dispatch_float, dispatch_float2, simd, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const ROWS_PER_TASK: usize = 64;

struct AddBias;

fn add_rows<T: Elem>(y: &[T], b: &[T]) -> Vec<T> {
    let mut out = y.to_vec();
    out.par_chunks_mut(b.len().max(1) * ROWS_PER_TASK)
        .for_each(|rows| {
            simd(|| {
                for row in rows.chunks_mut(b.len()) {
                    row.iter_mut().zip(b).for_each(|(o, &b)| *o += b);
                }
            })
        });
    out
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let dim = l1.dims().last().copied().unwrap_or(0);
        if l2.dims() != [dim] {
            candle_core::bail!("{n}: bias {:?} does not match rows of {dim}", l2.dims());
        }
        let out = dispatch_float2!(
            n,
            (s1, l1),
            (s2, l2),
            "input and bias must share one float dtype",
            |y, b| add_rows(y, b)
        );
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = column_sums(grad, b.elem_count())?;
        Ok((Some(grad.clone()), Some(db)))
    }
}

/// Sums the rows of a contiguous (.., dim) tensor into (dim,).
struct ColumnSum {
    dim: usize,
}

fn column_sum<T: Elem>(x: &[T], dim: usize) -> Vec<T> {
    x.par_chunks(dim * ROWS_PER_TASK)
        .map(|rows| {
            let mut acc = vec![T::zero(); dim];
            for row in rows.chunks(dim) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            acc
        })
        .reduce(
            || vec![T::zero(); dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                a
            },
        )
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dim = self.dim;
        if dim == 0 || layout.dims().last() != Some(&dim) {
            candle_core::bail!("column-sum: rows of {:?} are not {dim} wide", layout.dims());
        }
        let out = dispatch_float!(self.name(), storage, |s| {
            to_storage(column_sum(contiguous_slice(self.name(), s, layout)?, dim))
        });
        Ok((out, Shape::from(dim)))
    }
}

/// The sum of the rows of `x` (.., dim) as a (dim,) tensor with no graph: a bias's gradient.
pub(crate) fn column_sums(x: &Tensor, dim: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ColumnSum { dim })
}

/// `y + b` with `b` of shape (H,) added to every row of `y` (.., H).
pub fn add_bias(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    y.contiguous()?.apply_op2(&b.contiguous()?, AddBias)
}
