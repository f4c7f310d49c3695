//! `x W^T` for a few rows of `x` (decoding): each output is one streaming dot product over a
//! contiguous row of `W`, with no packing of `W` first. A general gemm packs the whole weight
//! matrix on every call, which for one row costs as much as the product itself. With a
//! backward pass, so it is safe on any path.

use super::kernel::{contiguous_slice, side_by_side_rows};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Storage, Tensor};

/// Rows of `x` up to which [`linear_rows`] beats gemm.
pub const MATVEC_MAX_ROWS: usize = 64;

struct MatVec;

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    // 16 independent accumulators so the compiler vectorises the loop.
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

/// Four 16-lane accumulators over 64 floats a step, as llama.cpp's `ggml_vec_dot_f32`: the
/// weight row streams from memory, so this is about issuing wide loads, not arithmetic.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 64 <= n, in bounds of both slices.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * k)),
                    _mm512_loadu_ps(pb.add(i + 16 * k)),
                )
            };
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
    _mm512_reduce_add_ps(sum) + tail
}

/// `a . b` over the shorter length, on the widest instruction set the CPU has (AVX-512, AVX2 +
/// FMA, or plain code the compiler vectorises).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { dot_avx512(a, b) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_generic(a, b)
}

/// `out[i * len + j] = x_i . w_j` for `x` (n, k) and `w` (len, k), both row-major.
///
/// With AVX-512, tiles of 4 weight rows by 6 input rows keep 24 sums in registers, and with
/// AVX2 tiles of 4 by 3 keep 12 (all 16 registers with the loaded vectors), so each loaded
/// vector feeds several multiply-adds instead of one; the rest one dot at a time.
fn block_product(x: &[f32], n: usize, k: usize, w: &[f32], out: &mut [f32]) {
    let len = w.len().checked_div(k).unwrap_or(0);
    let mut j0 = 0;
    #[cfg(target_arch = "x86_64")]
    if n >= 2 {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; `tiled` passes `rows` rows and 4 weight rows of k.
            j0 = tiled(x, n, k, w, out, TILE_X, |rows, xs, ws| unsafe {
                avx512_tile(rows, xs, ws, k)
            });
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA; `tiled` passes `rows` rows and 4 weight rows.
            j0 = tiled(x, n, k, w, out, TILE_X_AVX2, |rows, xs, ws| unsafe {
                avx2_tile(rows, xs, ws, k)
            });
        }
    }
    // Weight rows the tiles did not cover.
    for j in j0..len {
        let wr = &w[j * k..(j + 1) * k];
        for i in 0..n {
            out[i * len + j] = dot(&x[i * k..(i + 1) * k], wr);
        }
    }
}

/// Covers the weight rows of `w` in groups of [`TILE_W`], each against the rows of `x` in groups
/// of up to `tx`, with `tile(rows, xs, ws)`; returns the first weight row not covered.
fn tiled(
    x: &[f32],
    n: usize,
    k: usize,
    w: &[f32],
    out: &mut [f32],
    tx: usize,
    tile: impl Fn(usize, &[f32], &[f32]) -> [[f32; TILE_X]; TILE_W],
) -> usize {
    let len = w.len().checked_div(k).unwrap_or(0);
    let mut j0 = 0;
    while j0 + TILE_W <= len {
        let ws = &w[j0 * k..(j0 + TILE_W) * k];
        let mut i0 = 0;
        while i0 < n {
            let rows = tx.min(n - i0);
            let t = tile(rows, &x[i0 * k..(i0 + rows) * k], ws);
            for (dj, col) in t.iter().enumerate() {
                for (di, &v) in col[..rows].iter().enumerate() {
                    out[(i0 + di) * len + j0 + dj] = v;
                }
            }
            i0 += rows;
        }
        j0 += TILE_W;
    }
    j0
}

/// A tile of `TX` input rows in the widest tile's array.
#[inline(always)]
fn pad<const TX: usize>(t: [[f32; TX]; TILE_W]) -> [[f32; TILE_X]; TILE_W] {
    let mut out = [[0f32; TILE_X]; TILE_W];
    for (o, r) in out.iter_mut().zip(&t) {
        o[..TX].copy_from_slice(r);
    }
    out
}

/// Weight rows and input rows of one register tile (AVX-512; AVX2 takes fewer input rows).
const TILE_W: usize = 4;
const TILE_X: usize = 6;
const TILE_X_AVX2: usize = 3;

/// A 4 x `TX` tile: `t[dj][di] = w_{dj} . x_{di}`.
///
/// # Safety
/// The CPU must have AVX-512F; `x` holds `TX` rows of `k` and `w` 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const TX: usize>(x: &[f32], w: &[f32], k: usize) -> [[f32; TX]; TILE_W] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); TX]; TILE_W];
    let (px, pw) = (x.as_ptr(), w.as_ptr());
    let mut c = 0;
    while c + 16 <= k {
        // SAFETY: c + 16 <= k, within every row the caller guarantees.
        let xv: [__m512; TX] =
            std::array::from_fn(|di| unsafe { _mm512_loadu_ps(px.add(di * k + c)) });
        for (dj, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let wv = unsafe { _mm512_loadu_ps(pw.add(dj * k + c)) };
            for (a, &xv) in row.iter_mut().zip(&xv) {
                *a = _mm512_fmadd_ps(wv, xv, *a);
            }
        }
        c += 16;
    }
    let mut t = [[0f32; TX]; TILE_W];
    for dj in 0..TILE_W {
        for di in 0..TX {
            let tail: f32 = (c..k).map(|cc| x[di * k + cc] * w[dj * k + cc]).sum();
            t[dj][di] = _mm512_reduce_add_ps(acc[dj][di]) + tail;
        }
    }
    t
}

/// [`tile_avx512`] for `rows` (1..=6) input rows.
///
/// # Safety
/// As [`tile_avx512`], with `x` holding `rows` rows.
#[cfg(target_arch = "x86_64")]
unsafe fn avx512_tile(rows: usize, x: &[f32], w: &[f32], k: usize) -> [[f32; TILE_X]; TILE_W] {
    // SAFETY: the caller's guarantee.
    unsafe {
        match rows {
            6 => pad(tile_avx512::<6>(x, w, k)),
            5 => pad(tile_avx512::<5>(x, w, k)),
            4 => pad(tile_avx512::<4>(x, w, k)),
            3 => pad(tile_avx512::<3>(x, w, k)),
            2 => pad(tile_avx512::<2>(x, w, k)),
            _ => pad(tile_avx512::<1>(x, w, k)),
        }
    }
}

/// [`tile_avx2`] for `rows` (1..=3) input rows.
///
/// # Safety
/// As [`tile_avx2`], with `x` holding `rows` rows.
#[cfg(target_arch = "x86_64")]
unsafe fn avx2_tile(rows: usize, x: &[f32], w: &[f32], k: usize) -> [[f32; TILE_X]; TILE_W] {
    // SAFETY: the caller's guarantee.
    unsafe {
        match rows {
            3 => pad(tile_avx2::<3>(x, w, k)),
            2 => pad(tile_avx2::<2>(x, w, k)),
            _ => pad(tile_avx2::<1>(x, w, k)),
        }
    }
}

/// The sum of a vector's eight lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sum_avx2(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// [`tile_avx512`] with 8-lane vectors: 4 x `TX` sums, `TX` <= 3 so that the 12 sums, `TX`
/// input vectors and one weight vector fit the 16 registers.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `x` holds `TX` rows of `k` and `w` 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const TX: usize>(x: &[f32], w: &[f32], k: usize) -> [[f32; TX]; TILE_W] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); TX]; TILE_W];
    let (px, pw) = (x.as_ptr(), w.as_ptr());
    let mut c = 0;
    while c + 8 <= k {
        // SAFETY: c + 8 <= k, within every row the caller guarantees.
        let xv: [__m256; TX] =
            std::array::from_fn(|di| unsafe { _mm256_loadu_ps(px.add(di * k + c)) });
        for (dj, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let wv = unsafe { _mm256_loadu_ps(pw.add(dj * k + c)) };
            for (a, &xv) in row.iter_mut().zip(&xv) {
                *a = _mm256_fmadd_ps(wv, xv, *a);
            }
        }
        c += 8;
    }
    let mut t = [[0f32; TX]; TILE_W];
    for dj in 0..TILE_W {
        for di in 0..TX {
            let tail: f32 = (c..k).map(|cc| x[di * k + cc] * w[dj * k + cc]).sum();
            // SAFETY: the CPU has AVX2 (this function's own requirement).
            t[dj][di] = unsafe { sum_avx2(acc[dj][di]) } + tail;
        }
    }
    t
}

/// `x [W_0; W_1; ...]^T` for `x` (n, k) and row-major (out_i, k) matrices: (n, sum out_i),
/// row-major. Every weight row is read once, for all n rows of `x`; the rows of all the
/// matrices are shared out over the threads in one parallel pass.
fn rows_product(x: &[f32], k: usize, mats: &[&[f32]]) -> Vec<f32> {
    let n = x.len().checked_div(k).unwrap_or(0);
    let outs: Vec<usize> = mats
        .iter()
        .map(|w| w.len().checked_div(k).unwrap_or(0))
        .collect();
    side_by_side_rows(n, &outs, |m, rows, out| {
        block_product(x, n, k, &mats[m][rows.start * k..rows.end * k], out)
    })
}

impl CustomOp2 for MatVec {
    fn name(&self) -> &'static str {
        "matvec"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l1.shape().dims2()?;
        let (out, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("matvec: x is (_, {k}) but W is ({out}, {k2})");
        }
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("matvec: only f32 is supported");
        };
        let x = contiguous_slice(self.name(), x, l1)?;
        let w = contiguous_slice(self.name(), w, l2)?;
        Ok((
            CpuStorage::F32(rows_product(x, k, &[w])),
            Shape::from((n, out)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Gradients that hold no graph (see `super::linear`).
        let (dx, dw) = super::linear_backward(x, w, grad)?; // (n, in), (out, in)
        Ok((Some(dx), Some(dw)))
    }
}

/// `x W^T` for `x` (n, in) and `W` (out, in), f32.
pub fn linear_rows(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, MatVec)
}

/// [`linear_rows`] over several weight matrices at once (q/k/v, gate/up: one input, one pass):
/// `x` (n, in) and each `W_i` (out_i, in) give (n, sum out_i). Inference only: no gradient
/// flows back (the caller uses it only when no weight tracks gradients).
struct GroupMatVec<'a> {
    weights: &'a [&'a Tensor],
}

impl CustomOp1 for GroupMatVec<'_> {
    fn name(&self) -> &'static str {
        "group-matvec"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l.shape().dims2()?;
        let CpuStorage::F32(x) = s else {
            candle_core::bail!("group matvec: only f32 is supported");
        };
        let x = contiguous_slice(self.name(), x, l)?;
        let guards: Vec<_> = self
            .weights
            .iter()
            .map(|w| w.storage_and_layout())
            .collect();
        let mut mats = Vec::with_capacity(guards.len());
        for (g, w) in guards.iter().zip(self.weights) {
            let (out, k2) = w.dims2()?;
            if k2 != k {
                candle_core::bail!("group matvec: x is (_, {k}) but a W is ({out}, {k2})");
            }
            let Storage::Cpu(CpuStorage::F32(data)) = &*g.0 else {
                candle_core::bail!("group matvec: weights must be f32 on the CPU");
            };
            mats.push(contiguous_slice(self.name(), data, g.1)?);
        }
        let total: usize = mats.iter().map(|m| m.len() / k.max(1)).sum();
        Ok((
            CpuStorage::F32(rows_product(x, k, &mats)),
            Shape::from((n, total)),
        ))
    }
}

/// `x [W_0; W_1; ...]^T` for `x` (n, in) and f32 weights (out_i, in), without gradients.
pub fn linear_rows_group(x: &Tensor, weights: &[&Tensor]) -> Result<Tensor> {
    let ws: Vec<Tensor> = weights
        .iter()
        .map(|w| w.contiguous())
        .collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = ws.iter().collect();
    x.contiguous()?
        .apply_op1_no_bwd(&GroupMatVec { weights: &refs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn every_dot_product_path_agrees_on_every_length() {
        for n in [0usize, 1, 15, 16, 63, 64, 65, 200, 577] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            let tol = 1e-4 * (n as f64).max(1.0);
            assert!(
                (f64::from(dot_generic(&a, &b)) - want).abs() < tol,
                "generic {n}"
            );
            assert!(
                (f64::from(dot(&a, &b)) - want).abs() < tol,
                "dispatched {n}"
            );
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_tiles_give_every_dot_product() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        // 7 input rows (two tiles of 3 and one left), 8 weight rows, 29 columns (a tail of 5).
        let (n, len, k) = (7, 8, 29);
        let x: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.29).sin()).collect();
        let w: Vec<f32> = (0..len * k).map(|i| (i as f32 * 0.13).cos()).collect();
        let mut out = vec![0f32; n * len];
        // SAFETY: AVX2 and FMA were detected above.
        let covered = tiled(&x, n, k, &w, &mut out, TILE_X_AVX2, |rows, xs, ws| unsafe {
            avx2_tile(rows, xs, ws, k)
        });
        assert_eq!(covered, len);
        for i in 0..n {
            for j in 0..len {
                let want = dot_generic(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                let got = out[i * len + j];
                assert!((got - want).abs() < 1e-4, "({i}, {j}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn tiles_and_their_edges_give_every_dot_product() {
        // 13 input rows (two tiles of 6 and one left), 9 weight rows (two tiles of 4 and one
        // left), 70 columns (four vectors of 16 and a tail of 6).
        let (n, len, k) = (13, 9, 70);
        let x: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..len * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut out = vec![0f32; n * len];
        block_product(&x, n, k, &w, &mut out);
        for i in 0..n {
            for j in 0..len {
                let want = dot_generic(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                let got = out[i * len + j];
                assert!((got - want).abs() < 1e-4, "({i}, {j}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn a_group_is_its_parts_side_by_side() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2.0 * 70.0, &dev)?
            .reshape((2, 70))?
            .sin()?;
        let w1 = Tensor::arange(0f32, 130.0 * 70.0, &dev)?
            .reshape((130, 70))?
            .cos()?;
        let w2 = Tensor::arange(0f32, 3.0 * 70.0, &dev)?
            .reshape((3, 70))?
            .sin()?;
        let got = linear_rows_group(&x, &[&w1, &w2])?;
        let want = Tensor::cat(&[linear_rows(&x, &w1)?, linear_rows(&x, &w2)?], 1)?;
        let gap = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(gap < 1e-5, "{gap}");
        Ok(())
    }
}
