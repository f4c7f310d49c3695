//! GGML block-quantized weight matrices (Q8_0, Q4_0, Q4_1) and their matrix product with f32
//! activations through integer dot products, as llama.cpp's `ggml-cpu` computes them.
//!
//! The activations are quantized once per call to 8-bit blocks of 32 ([`QuantizedRows`]), and
//! every output is a sum over blocks of `d_w * d_x * (int8 dot of 32 pairs)` (plus the Q4 offset
//! terms). The int8 dot is AVX-512 VNNI (`vpdpbusd`) or AVX2 (`vpmaddubsw`) when the CPU has
//! them, chosen at run time ([`kernels`]). Several matrices that read the same input (q/k/v,
//! gate/up) run as one product ([`quantized_matmul`] over a slice): the input is quantized once
//! and all their rows are shared out over the threads in one parallel pass.

mod kernels;
#[cfg(target_arch = "x86_64")]
mod tiles;
mod transpose;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Arc;

pub use kernels::Isa;
pub use transpose::matmul_rows_transposed;

/// Elements per quantization block (all formats here).
pub const BLOCK: usize = 32;

/// The block formats with integer-dot kernels here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockFormat {
    /// `w = d * q`, q in -128..=127: an f16 scale and 32 bytes per block.
    Q8_0,
    /// `w = d * (q - 8)`, q in 0..16: an f16 scale and 16 bytes of nibbles per block.
    Q4_0,
    /// `w = d * q + m`, q in 0..16: f16 scale and offset and 16 bytes of nibbles per block.
    Q4_1,
}

impl BlockFormat {
    /// The format for a GGML dtype, when it has a kernel here.
    pub fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            GgmlDType::Q4_0 => Some(Self::Q4_0),
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            _ => None,
        }
    }

    /// Bytes of quants per block.
    fn quant_bytes(self) -> usize {
        match self {
            Self::Q8_0 => 32,
            Self::Q4_0 | Self::Q4_1 => 16,
        }
    }

    /// Bytes per block in GGML's array-of-structs layout.
    fn ggml_block_bytes(self) -> usize {
        match self {
            Self::Q8_0 => 34,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
        }
    }
}

/// A (rows, cols) block-quantized matrix, rows as PyTorch's (out, in). Stored as separate
/// arrays of f16 scale bits, f16 offset bits (Q4_1) and quants, so the kernels load aligned runs
/// of quants; the bytes read per row are the same as GGML's.
#[derive(Clone, Debug)]
pub struct BlockQuantized {
    format: BlockFormat,
    rows: usize,
    cols: usize,
    scales: Vec<u16>,
    offsets: Vec<u16>,
    quants: Vec<u8>,
}

impl BlockQuantized {
    /// Converts a 2-D GGML tensor of a format in [`BlockFormat`]; None for another format.
    pub fn from_qtensor(q: &QTensor) -> Result<Option<Self>> {
        let Some(format) = BlockFormat::of(q.dtype()) else {
            return Ok(None);
        };
        let (rows, cols) = q.shape().dims2()?;
        let data = q.data()?;
        Self::from_ggml_bytes(format, rows, cols, &data).map(Some)
    }

    /// Splits GGML's blocks (`[f16 d][f16 m]?[quants]`, row after row) into the arrays here.
    pub fn from_ggml_bytes(
        format: BlockFormat,
        rows: usize,
        cols: usize,
        data: &[u8],
    ) -> Result<Self> {
        if !cols.is_multiple_of(BLOCK) {
            candle_core::bail!("{format:?} matrix: {cols} columns is not a multiple of {BLOCK}");
        }
        let blocks = rows * cols / BLOCK;
        let bb = format.ggml_block_bytes();
        if data.len() != blocks * bb {
            candle_core::bail!(
                "{format:?} matrix ({rows}, {cols}): {} bytes, expected {}",
                data.len(),
                blocks * bb
            );
        }
        let qb = format.quant_bytes();
        let mut scales = Vec::with_capacity(blocks);
        let mut offsets = Vec::new();
        let mut quants = Vec::with_capacity(blocks * qb);
        for b in data.chunks_exact(bb) {
            scales.push(u16::from_le_bytes([b[0], b[1]]));
            let q = if format == BlockFormat::Q4_1 {
                offsets.push(u16::from_le_bytes([b[2], b[3]]));
                &b[4..]
            } else {
                &b[2..]
            };
            quants.extend_from_slice(q);
        }
        Ok(Self {
            format,
            rows,
            cols,
            scales,
            offsets,
            quants,
        })
    }

    /// Quantizes an f32 (rows, cols) tensor (tests, and fused copies built at load).
    pub fn quantize(t: &Tensor, format: BlockFormat) -> Result<Self> {
        let dtype = match format {
            BlockFormat::Q8_0 => GgmlDType::Q8_0,
            BlockFormat::Q4_0 => GgmlDType::Q4_0,
            BlockFormat::Q4_1 => GgmlDType::Q4_1,
        };
        let q = QTensor::quantize(t, dtype)?;
        let (rows, cols) = t.dims2()?;
        Self::from_ggml_bytes(format, rows, cols, &q.data()?)
    }

    pub fn format(&self) -> BlockFormat {
        self.format
    }

    /// (rows, cols) = (out, in).
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The weights as f32 (rows, cols), for checks.
    pub fn dequantize(&self) -> Vec<f32> {
        let nb = self.cols / BLOCK;
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for b in 0..self.rows * nb {
            let d = kernels::f16_to_f32(self.scales[b]);
            let q = &self.quants[b * self.format.quant_bytes()..];
            for i in 0..BLOCK {
                let v = match self.format {
                    BlockFormat::Q8_0 => d * f32::from(q[i] as i8),
                    BlockFormat::Q4_0 | BlockFormat::Q4_1 => {
                        let nib = if i < 16 { q[i] & 15 } else { q[i - 16] >> 4 };
                        match self.format {
                            BlockFormat::Q4_0 => d * (f32::from(nib) - 8.0),
                            _ => d * f32::from(nib) + kernels::f16_to_f32(self.offsets[b]),
                        }
                    }
                };
                out.push(v);
            }
        }
        out
    }

    /// Row `r` as the kernels read it.
    fn row(&self, r: usize) -> kernels::WeightRow<'_> {
        let nb = self.cols / BLOCK;
        let qb = self.format.quant_bytes();
        kernels::WeightRow {
            quants: &self.quants[r * nb * qb..(r + 1) * nb * qb],
            scales: &self.scales[r * nb..(r + 1) * nb],
            offsets: if self.offsets.is_empty() {
                &[]
            } else {
                &self.offsets[r * nb..(r + 1) * nb]
            },
        }
    }
}

/// Rows of f32 activations quantized to 8-bit blocks of 32: per block an f32 scale `d`, `d`
/// times the sum of its quants (the Q4 offset terms need it), and 32 quants.
pub struct QuantizedRows {
    cols: usize,
    scales: Vec<f32>,
    scaled_sums: Vec<f32>,
    quants: Vec<i8>,
}

impl QuantizedRows {
    /// Quantizes `x` (n rows of `cols`, row-major) with round-to-nearest, `d = max|x| / 127`.
    pub fn new(x: &[f32], cols: usize) -> Result<Self> {
        if !cols.is_multiple_of(BLOCK) || !x.len().is_multiple_of(cols.max(1)) {
            candle_core::bail!(
                "quantized matmul: rows of {cols} inputs are not whole blocks of {BLOCK}"
            );
        }
        let blocks = x.len() / BLOCK;
        let mut q = Self {
            cols,
            scales: vec![0.0; blocks],
            scaled_sums: vec![0.0; blocks],
            quants: vec![0; x.len()],
        };
        Isa::detect().quantize_blocks(x, &mut q.scales, &mut q.scaled_sums, &mut q.quants);
        Ok(q)
    }

    fn rows(&self) -> usize {
        self.quants.len().checked_div(self.cols).unwrap_or(0)
    }

    fn row(&self, i: usize) -> kernels::ActRow<'_> {
        let nb = self.cols / BLOCK;
        kernels::ActRow {
            quants: &self.quants[i * self.cols..(i + 1) * self.cols],
            scales: &self.scales[i * nb..(i + 1) * nb],
            scaled_sums: &self.scaled_sums[i * nb..(i + 1) * nb],
        }
    }
}

/// `x [W_0; W_1; ...]^T` for f32 rows `x` (n, k) and matrices all of `k` columns: returns the
/// (n, sum of rows) products side by side, row-major.
pub fn matmul_rows(x: &[f32], k: usize, mats: &[&BlockQuantized]) -> Result<Vec<f32>> {
    if let Some(m) = mats.iter().find(|m| m.cols != k) {
        candle_core::bail!(
            "quantized matmul: input has {k} columns, a {:?} matrix has {}",
            m.format,
            m.cols
        );
    }
    let xq = QuantizedRows::new(x, k)?;
    let n = xq.rows();
    let outs: Vec<usize> = mats.iter().map(|m| m.rows).collect();
    let isa = Isa::detect();
    let rows: Vec<kernels::ActRow> = (0..n).map(|i| xq.row(i)).collect();
    let y = crate::ops::side_by_side_rows(n, &outs, |mi, range, out| {
        let m = mats[mi];
        let ws: Vec<kernels::WeightRow> = range.map(|r| m.row(r)).collect();
        isa.product(m.format, &ws, &rows, out);
    });
    Ok(y)
}

struct QuantizedMatmul {
    mats: Vec<Arc<BlockQuantized>>,
}

impl CustomOp1 for QuantizedMatmul {
    fn name(&self) -> &'static str {
        "block-quantized-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = s else {
            candle_core::bail!("quantized matmul: the input must be f32");
        };
        let x = crate::ops::contiguous_slice(self.name(), x, l)?;
        let dims = l.shape().dims();
        let k = dims.last().copied().unwrap_or(0);
        let mats: Vec<&BlockQuantized> = self.mats.iter().map(|m| m.as_ref()).collect();
        let y = matmul_rows(x, k, &mats)?;
        let mut out = dims.to_vec();
        if let Some(last) = out.last_mut() {
            *last = self.mats.iter().map(|m| m.rows).sum();
        }
        Ok((CpuStorage::F32(y), Shape::from(out)))
    }

    /// The input's gradient only (the weights are frozen): `grad [W_0; W_1; ...]`, the weights
    /// dequantized panel by panel inside the kernel ([`matmul_rows_transposed`]).
    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(quantized_matmul_transposed(grad, &self.mats)?))
    }
}

/// `grad [W_0; W_1; ...]` for `grad` (.., sum of rows): the input gradient of
/// [`quantized_matmul`], no gradient tracked.
pub(crate) fn quantized_matmul_transposed(
    grad: &Tensor,
    mats: &[Arc<BlockQuantized>],
) -> Result<Tensor> {
    let op = transpose::QuantizedMatmulT {
        mats: mats.to_vec(),
    };
    let g = grad.to_dtype(candle_core::DType::F32)?.contiguous()?;
    g.apply_op1_no_bwd(&op)
}

/// `x [W_0; W_1; ...]^T` for `x` (.., k), f32: (.., sum of the matrices' rows). The weights are
/// frozen: when `x` tracks a gradient (LoRA training over a quantized base), the backward
/// gives `x` its gradient through the transposed product and the weights none.
pub fn quantized_matmul(x: &Tensor, mats: &[Arc<BlockQuantized>]) -> Result<Tensor> {
    let x = x.to_dtype(candle_core::DType::F32)?.contiguous()?;
    let op = QuantizedMatmul {
        mats: mats.to_vec(),
    };
    if x.track_op() {
        x.apply_op1(op)
    } else {
        x.apply_op1_no_bwd(&op)
    }
}

#[cfg(test)]
mod tests;
