//! The transposed product `g [W_0; W_1; ...]` of block-quantized matrices: the input gradient of
//! [`super::quantized_matmul`], so that a frozen quantized weight (a LoRA base, QLoRA-style)
//! passes gradients to the layers below it without ever existing in f32.
//!
//! The output's columns (the matrices' inputs) are cut into runs of whole blocks, one parallel
//! task each. A task dequantizes a panel of up to [`PANEL_ROWS`] weight rows over its columns
//! (at most `PANEL_ROWS x 512` floats, reused) and adds `g[:, rows] x panel` into its columns
//! with `gemm`, so no dequantized copy of a whole matrix is ever made, and the dequantized
//! values are exactly those of [`BlockQuantized::dequantize`].

use super::kernels::{f16_to_f32, Isa, WeightRow};
use super::{BlockFormat, BlockQuantized, BLOCK};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use std::ops::Range;
use std::sync::Arc;

/// Weight rows dequantized at a time per task.
const PANEL_ROWS: usize = 256;
/// Most columns (input features) one task owns.
const MAX_TASK_COLS: usize = 512;

/// Blocks `blocks` of one weight row as f32 into `out` (`BLOCK` floats per block): the values
/// [`BlockQuantized::dequantize`] gives, bit for bit.
#[inline(always)]
fn dequantize_generic(f: BlockFormat, w: &WeightRow, blocks: Range<usize>, out: &mut [f32]) {
    for (o, b) in out.chunks_exact_mut(BLOCK).zip(blocks) {
        let d = f16_to_f32(w.scales[b]);
        match f {
            BlockFormat::Q8_0 => {
                for (v, &q) in o.iter_mut().zip(&w.quants[b * 32..(b + 1) * 32]) {
                    *v = d * f32::from(q as i8);
                }
            }
            BlockFormat::Q4_0 | BlockFormat::Q4_1 => {
                // d (q - 8) = d q - 8 d and d q + m: both products are exact in f32 (an f16
                // scale times a nibble), so this rounds as the plain formula does.
                let m = match f {
                    BlockFormat::Q4_1 => f16_to_f32(w.offsets[b]),
                    _ => -8.0 * d,
                };
                let (lo, hi) = o.split_at_mut(BLOCK / 2);
                for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&w.quants[b * 16..(b + 1) * 16]) {
                    *l = d * f32::from(q & 15) + m;
                    *h = d * f32::from(q >> 4) + m;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn dequantize_avx2(f: BlockFormat, w: &WeightRow, blocks: Range<usize>, out: &mut [f32]) {
    dequantize_generic(f, w, blocks, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
fn dequantize_avx512(f: BlockFormat, w: &WeightRow, blocks: Range<usize>, out: &mut [f32]) {
    dequantize_generic(f, w, blocks, out)
}

impl Isa {
    /// Blocks `blocks` of weight row `w` dequantized into `out` (`BLOCK` floats a block; fewer
    /// blocks are written when `out` is shorter). The same loop compiled for each instruction
    /// set, so the values are identical on every one.
    pub(crate) fn dequantize_blocks(
        self,
        f: BlockFormat,
        w: &WeightRow,
        blocks: Range<usize>,
        out: &mut [f32],
    ) {
        let qb = f.quant_bytes();
        let mut nb = w.scales.len().min(w.quants.len() / qb);
        if f == BlockFormat::Q4_1 {
            nb = nb.min(w.offsets.len());
        }
        let blocks = blocks.start.min(nb)..blocks.end.min(nb);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::supported` checked the features.
            Isa::Avx512Vnni => unsafe { dequantize_avx512(f, w, blocks, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { dequantize_avx2(f, w, blocks, out) },
            _ => dequantize_generic(f, w, blocks, out),
        }
    }
}

/// Runs of whole blocks over `k` columns: about four per thread, at most [`MAX_TASK_COLS`].
fn column_tasks(k: usize) -> Vec<Range<usize>> {
    let nb = k / BLOCK;
    let threads = rayon::current_num_threads().max(1);
    let per = nb
        .div_ceil(4 * threads)
        .clamp(1, (MAX_TASK_COLS / BLOCK).max(1));
    (0..nb).step_by(per).map(|b| b..(b + per).min(nb)).collect()
}

/// `g [W_0; W_1; ...]` for `g` (n, sum of the matrices' rows), row-major, and matrices all of
/// `k` columns: the (n, k) product, row-major, with the weights dequantized by `isa` panel by
/// panel inside each task.
pub fn matmul_rows_transposed(
    g: &[f32],
    n: usize,
    mats: &[&BlockQuantized],
    isa: Isa,
) -> Result<Vec<f32>> {
    let k = mats.first().map_or(0, |m| m.cols);
    if let Some(m) = mats.iter().find(|m| m.cols != k) {
        candle_core::bail!(
            "quantized matmul backward: matrices of {k} and {} columns",
            m.cols
        );
    }
    let total: usize = mats.iter().map(|m| m.rows).sum();
    if g.len() != n * total {
        candle_core::bail!(
            "quantized matmul backward: gradient of {} values, expected {n} x {total}",
            g.len()
        );
    }
    use rayon::prelude::*;
    let tasks = column_tasks(k);
    let parts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|blocks| {
            let kc = blocks.len() * BLOCK;
            let mut acc = vec![0f32; n * kc];
            let mut panel = vec![0f32; PANEL_ROWS.min(total) * kc];
            let mut first = 0; // the matrix's first column in `g`
            for m in mats {
                for r0 in (0..m.rows).step_by(PANEL_ROWS) {
                    let rows = PANEL_ROWS.min(m.rows - r0);
                    for (r, out) in panel.chunks_exact_mut(kc).take(rows).enumerate() {
                        isa.dequantize_blocks(m.format, &m.row(r0 + r), blocks.clone(), out);
                    }
                    // SAFETY: acc is (n, kc) with row stride kc; the lhs is columns
                    // first + r0 .. + rows of g, (n, total) with row stride total, all in
                    // bounds since first + m.rows <= total; the panel is (rows, kc).
                    unsafe {
                        gemm::gemm(
                            n,
                            kc,
                            rows,
                            acc.as_mut_ptr(),
                            1,
                            kc as isize,
                            true,
                            g.as_ptr().add(first + r0),
                            1,
                            total as isize,
                            panel.as_ptr(),
                            1,
                            kc as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                }
                first += m.rows;
            }
            acc
        })
        .collect();
    let mut out = vec![0f32; n * k];
    for (blocks, part) in tasks.iter().zip(&parts) {
        let (c0, kc) = (blocks.start * BLOCK, blocks.len() * BLOCK);
        for i in 0..n {
            out[i * k + c0..i * k + c0 + kc].copy_from_slice(&part[i * kc..(i + 1) * kc]);
        }
    }
    Ok(out)
}

/// The backward of [`super::quantized_matmul`]: applied to the output's gradient (.., sum of
/// rows), gives the input's (.., k).
pub(super) struct QuantizedMatmulT {
    pub mats: Vec<Arc<BlockQuantized>>,
}

impl CustomOp1 for QuantizedMatmulT {
    fn name(&self) -> &'static str {
        "block-quantized-matmul-transposed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(g) = s else {
            candle_core::bail!("quantized matmul backward: the gradient must be f32");
        };
        let g = crate::ops::contiguous_slice(self.name(), g, l)?;
        let dims = l.shape().dims();
        let total = dims.last().copied().unwrap_or(0);
        let n = g.len().checked_div(total).unwrap_or(0);
        let mats: Vec<&BlockQuantized> = self.mats.iter().map(|m| m.as_ref()).collect();
        let x = matmul_rows_transposed(g, n, &mats, Isa::detect())?;
        let mut out = dims.to_vec();
        if let Some(last) = out.last_mut() {
            *last = mats.first().map_or(0, |m| m.cols);
        }
        Ok((CpuStorage::F32(x), Shape::from(out)))
    }
}
