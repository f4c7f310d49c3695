//! Helpers shared by the CPU kernels: dtype dispatch and contiguous slices.

use candle_core::{CpuStorage, Layout, Result, WithDType};
use num_traits::Float;

/// The floating-point element types the kernels support.
pub trait Elem: WithDType + Float + std::ops::AddAssign + Send + Sync {
    /// `e^x`. For f32 a polynomial that the compiler vectorizes (libm's `expf` is one call per
    /// element, the largest non-gemm cost of an encoder step); f64 keeps libm's.
    fn fast_exp(self) -> Self;
}
impl Elem for f32 {
    fn fast_exp(self) -> Self {
        exp_f32(self)
    }
}
impl Elem for f64 {
    fn fast_exp(self) -> Self {
        self.exp()
    }
}

/// Runs `f` compiled for AVX2 + FMA when the CPU has them, else as it is. The element-wise
/// kernels are built for baseline x86-64 (SSE2, 4 lanes); inside `f` the compiler may use
/// 8-lane vectors and fused multiply-adds. Call it inside each parallel task, since closures
/// handed to rayon are compiled on their own.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked to have both features.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

/// Sum of `f(v)` over `x` in 8 independent accumulators, so that the loop vectorizes (a single
/// running sum is a serial chain the compiler may not reorder).
#[inline(always)]
pub fn sum_map_lanes<T: Elem>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |a, &v| a + f(v));
    acc.iter().fold(tail, |a, &v| a + v)
}

/// Sum of `x`; see [`sum_map_lanes`].
#[inline(always)]
pub fn sum_lanes<T: Elem>(x: &[T]) -> T {
    sum_map_lanes(x, |v| v)
}

/// Maximum of `x` over 8 independent lanes (`-inf` for an empty slice); see [`sum_lanes`].
#[inline(always)]
pub fn max_lanes<T: Elem>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(T::neg_infinity(), |a, &v| if v > a { v } else { a });
    acc.iter().fold(tail, |a, &v| if v > a { v } else { a })
}

/// Cephes' `expf`: `e^x = 2^n e^r` with `n = round(x log2 e)`, `|r| <= ln2 / 2`, `e^r` by a
/// degree-6 polynomial (relative error about 2e-7), `2^n` built in the exponent bits. Rounding
/// uses the 1.5 * 2^23 trick so that the loop has no branch and no libm call. Below -87.3 the
/// result is 0 (as `expf` underflows there); above 88 it saturates at e^88.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.3, 88.0);
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let n_int = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * z + r + 1.0;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < -87.3 {
        0.0
    } else {
        er * scale
    }
}

/// The contiguous slice a layout describes, or an error naming the op.
pub fn contiguous_slice<'a, T: WithDType>(
    op: &str,
    data: &'a [T],
    layout: &Layout,
) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// An f32 storage as a (copied) tensor, for a fused op that runs candle ops inside its forward;
/// other dtypes are an error naming the op.
pub fn f32_tensor(op: &str, storage: &CpuStorage, layout: &Layout) -> Result<candle_core::Tensor> {
    let data = f32_slice(op, storage, layout)?;
    candle_core::Tensor::from_slice(data, layout.shape(), &candle_core::Device::Cpu)
}

/// An f32 storage's contiguous slice, borrowed (no copy); other dtypes and strided layouts are
/// errors naming the op.
pub fn f32_slice<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 is supported");
    };
    contiguous_slice(op, data, layout)
}

/// `x W^T` for row-major `x` (n, k) and `w` (out, k) into a new row-major (n, out) buffer, one
/// gemm over the rayon pool's threads, reading both operands in place: a fused op's forward
/// then copies neither its input, nor the weight, nor the product.
pub fn matmul_x_wt(x: &[f32], w: &[f32], n: usize, k: usize, out: usize) -> Result<Vec<f32>> {
    matmul_x_wt_plus(x, w, None, n, k, out)
}

/// [`matmul_x_wt`] plus `bias` (out,) on every row, added by the gemm itself: the output
/// starts as the bias rows and the product accumulates onto them, instead of a second pass
/// (and a second buffer) after the product.
pub fn matmul_x_wt_plus(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    n: usize,
    k: usize,
    out: usize,
) -> Result<Vec<f32>> {
    if x.len() != n * k || w.len() != out * k {
        candle_core::bail!(
            "matmul: x has {} values for ({n}, {k}), w {} for ({out}, {k})",
            x.len(),
            w.len()
        );
    }
    let mut y = match bias {
        Some(b) if b.len() != out => {
            candle_core::bail!("matmul: a bias of {} values for {out} outputs", b.len())
        }
        Some(b) => {
            let mut y = Vec::with_capacity(n * out);
            for _ in 0..n {
                y.extend_from_slice(b);
            }
            y
        }
        None => vec![0f32; n * out],
    };
    if n == 0 || out == 0 || k == 0 {
        return Ok(y);
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: y is (n, out) row-major (column stride 1, row stride out); x is (n, k) row-major;
    // W^T (k, out) is read from w (out, k): element (r, c) at c * k + r, so column stride k and
    // row stride 1. All three lengths were checked above.
    unsafe {
        gemm::gemm(
            n,
            out,
            k,
            y.as_mut_ptr(),
            1,
            out as isize,
            bias.is_some(),
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            if bias.is_some() { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(y)
}

/// The gradients of `x W^T` for `x` (n, in) and `W` (out, in): `(grad W, grad^T x)`, computed
/// on detached tensors so that neither holds a graph.
pub fn linear_backward(
    x: &candle_core::Tensor,
    w: &candle_core::Tensor,
    grad: &candle_core::Tensor,
) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
    let (x, w, grad) = (x.detach(), w.detach(), grad.detach());
    Ok((grad.matmul(&w)?, grad.t()?.matmul(&x)?))
}

/// Applies a kernel written once, generic over the element type, to f32 or f64 storage.
macro_rules! dispatch_float {
    ($op:expr, $storage:expr, |$s:ident| $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32($s) => $body,
            candle_core::CpuStorage::F64($s) => $body,
            other => candle_core::bail!(
                "{}: unsupported dtype {:?}",
                $op,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    };
}
pub(crate) use dispatch_float;

/// Applies a two-input kernel, written once over the element type, to a pair of f32 or f64
/// storages: `$a` and `$b` are bound to their contiguous slices and `$body` gives the output
/// vector; storages of different dtypes fail with `"{op}: {mismatch}"`.
macro_rules! dispatch_float2 {
    ($op:expr, ($s1:expr, $l1:expr), ($s2:expr, $l2:expr), $mismatch:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (candle_core::CpuStorage::F32(x), candle_core::CpuStorage::F32(y)) => {
                let $a = $crate::ops::kernel::contiguous_slice($op, x, $l1)?;
                let $b = $crate::ops::kernel::contiguous_slice($op, y, $l2)?;
                $crate::ops::kernel::to_storage($body)
            }
            (candle_core::CpuStorage::F64(x), candle_core::CpuStorage::F64(y)) => {
                let $a = $crate::ops::kernel::contiguous_slice($op, x, $l1)?;
                let $b = $crate::ops::kernel::contiguous_slice($op, y, $l2)?;
                $crate::ops::kernel::to_storage($body)
            }
            _ => candle_core::bail!("{}: {}", $op, $mismatch),
        }
    };
}
pub(crate) use dispatch_float2;

/// Wraps a computed vector back into storage of the same dtype.
pub fn to_storage<T: WithDType>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

/// Output rows of one matrix that one parallel task computes (the row products below).
const ROWS_PER_TASK: usize = 64;

/// Rows per task: [`ROWS_PER_TASK`], or more when one input row (decoding) would make many
/// small tasks, so that there are about four tasks per thread in the pass (a multiple of 16).
fn rows_per_task(n: usize, total: usize, threads: usize) -> usize {
    if n > 1 {
        return ROWS_PER_TASK;
    }
    let share = total.div_ceil(4 * threads.max(1)).next_multiple_of(16);
    share.max(ROWS_PER_TASK)
}

/// The products of `n` input rows with several matrices of `outs[m]` rows each, side by side:
/// (n, sum outs), row-major. Every matrix's rows are cut into tasks of [`ROWS_PER_TASK`], all
/// shared out over the threads in one parallel pass; `block(m, rows, out)` fills `out`
/// (n, rows.len()) with the inputs' products with those rows of matrix `m`.
pub(crate) fn side_by_side_rows(
    n: usize,
    outs: &[usize],
    block: impl Fn(usize, std::ops::Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let total: usize = outs.iter().sum();
    let per_task = rows_per_task(n, total, rayon::current_num_threads());
    // (matrix, its rows, column of the output) for each task.
    let mut tasks = Vec::new();
    let mut col = 0;
    for (m, &out) in outs.iter().enumerate() {
        for start in (0..out).step_by(per_task) {
            tasks.push((m, start..(start + per_task).min(out), col + start));
        }
        col += out;
    }
    if n == 1 {
        // One input row: each task's outputs are a run of the output, written in place.
        let mut y = vec![0f32; total];
        let mut rest = y.as_mut_slice();
        let mut runs = Vec::with_capacity(tasks.len());
        for (m, rows, _) in &tasks {
            let (run, tail) = rest.split_at_mut(rows.len());
            runs.push((*m, rows.clone(), run));
            rest = tail;
        }
        runs.into_par_iter()
            .for_each(|(m, rows, run)| block(m, rows, run));
        return y;
    }
    let blocks: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|(m, rows, _)| {
            let mut out = vec![0f32; n * rows.len()];
            block(*m, rows.clone(), &mut out);
            out
        })
        .collect();
    let mut y = vec![0f32; n * total];
    for ((_, rows, col), block) in tasks.iter().zip(&blocks) {
        let len = rows.len();
        for i in 0..n {
            y[i * total + col..i * total + col + len]
                .copy_from_slice(&block[i * len..(i + 1) * len]);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn fast_exp_matches_libm_within_relative_3e_7() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let want = f64::from(x).exp();
            let rel = ((f64::from(exp_f32(x)) - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
