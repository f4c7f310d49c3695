//! Register tiles for the block-quantized product of many activation rows (prefill, training):
//! `TR` weight rows by `TC` activation rows per tile, after llamafile's `tinyBLAS_Q0_AVX`, so
//! each loaded weight block (its nibbles widened, its scale converted) serves `TC` activation
//! rows and each loaded activation block `TR` weight rows. Per block and pair: the integer dot
//! of 32 pairs, converted and scaled into a float accumulator; the offset terms (Q4_0's 8,
//! Q4_1's `m`, biased Q8_0's 128) as scalars per block, since they need only the block sums.

use super::kernels::x86::half;
use super::kernels::{ActRow, WeightRow};
use super::BlockFormat;
use std::arch::x86_64::*;

/// Weight rows and activation rows of a full tile: 8 accumulators. Of 2 x 3, 2 x 4 and 1 x 4,
/// 2 x 4 was fastest on the AVX2 EPYC (one thread, 32 rows by a 1536 x 576 matrix: Q8_0
/// about 1.25x the staged one-weight-row kernel it replaced, Q4_1 about the same).
pub const TR: usize = 2;
pub const TC: usize = 4;

/// One block's 32 quants of weight row `w` as the instruction's unsigned operand, and for
/// Q8_0 without bias the raw bytes whose signs go over to the activations.
macro_rules! tile_body {
    ($fmt:expr, $ws:expr, $xs:expr, $nb:expr, $out:expr, $stride:expr, $biased:expr,
     $R:ident, $C:ident, |$a:ident, $c:ident| $idot:expr) => {{
        let biased: bool = $biased;
        let f = format_of($fmt);
        let (ws, xs, nb, out, stride): (&[WeightRow], &[ActRow], usize, &mut [f32], usize) =
            ($ws, $xs, $nb, $out, $stride);
        let wq: [*const u8; $R] = std::array::from_fn(|r| ws[r].quants.as_ptr());
        let wd: [*const u16; $R] = std::array::from_fn(|r| ws[r].scales.as_ptr());
        let xq: [*const i8; $C] = std::array::from_fn(|c| xs[c].quants.as_ptr());
        let xd: [*const f32; $C] = std::array::from_fn(|c| xs[c].scales.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); $C]; $R];
        for b in 0..nb {
            let mut wv = [_mm256_setzero_si256(); $R];
            let mut raw = [_mm256_setzero_si256(); $R];
            let mut dw = [_mm256_setzero_ps(); $R];
            for r in 0..$R {
                // SAFETY: b < nb blocks, in bounds of every row (the caller's `nb`).
                unsafe {
                    dw[r] = _mm256_set1_ps(half(*wd[r].add(b)));
                    wv[r] = match f {
                        BlockFormat::Q8_0 => {
                            raw[r] = _mm256_loadu_si256(wq[r].add(b * 32).cast());
                            if biased {
                                _mm256_xor_si256(raw[r], _mm256_set1_epi8(-128))
                            } else {
                                _mm256_sign_epi8(raw[r], raw[r])
                            }
                        }
                        _ => super::kernels::x86::nibbles(wq[r].add(b * 16)),
                    };
                }
            }
            for c in 0..$C {
                // SAFETY: as above.
                let (xv, dx) = unsafe {
                    (
                        _mm256_loadu_si256(xq[c].add(b * 32).cast()),
                        _mm256_broadcast_ss(&*xd[c].add(b)),
                    )
                };
                for r in 0..$R {
                    let ($a, $c) = if f == BlockFormat::Q8_0 && !biased {
                        (wv[r], _mm256_sign_epi8(xv, raw[r]))
                    } else {
                        (wv[r], xv)
                    };
                    // The activation's scale by a broadcast load, the weight's by a vector
                    // made once per block: no scalar product to broadcast per pair.
                    let p = _mm256_mul_ps(_mm256_cvtepi32_ps($idot), dx);
                    acc[r][c] = _mm256_fmadd_ps(dw[r], p, acc[r][c]);
                }
            }
        }
        // The offset terms need only the blocks' sums: `m_w (d_x sum q_x)` for Q4_1, and
        // `- o d_w (d_x sum q_x)` for an offset `o` the weights went in with.
        let shift = match f {
            BlockFormat::Q8_0 if biased => -128.0,
            BlockFormat::Q4_0 => -8.0,
            _ => 0.0,
        };
        for r in 0..$R {
            let w = &ws[r];
            for c in 0..$C {
                let sums = &xs[c].scaled_sums[..nb];
                let off: f32 = match f {
                    BlockFormat::Q4_1 => half_dot(&w.offsets[..nb], sums),
                    BlockFormat::Q8_0 if !biased => 0.0,
                    _ => shift * half_dot(&w.scales[..nb], sums),
                };
                out[c * stride + r] = super::kernels::x86::hsum(acc[r][c]) + off;
            }
        }
    }};
}

/// The format a tile is compiled for (0 = Q8_0, 1 = Q4_0, 2 = Q4_1): a constant, so every
/// choice on it in the loops is made at compile time.
#[inline(always)]
const fn format_of(fmt: u8) -> BlockFormat {
    match fmt {
        0 => BlockFormat::Q8_0,
        1 => BlockFormat::Q4_0,
        _ => BlockFormat::Q4_1,
    }
}

/// `sum_i h_i s_i` for f16 bits `h`, eight lanes at a time (F16C).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn half_dot(h: &[u16], s: &[f32]) -> f32 {
    let n = h.len().min(s.len());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, in bounds of both slices.
        let (hv, sv) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().add(i).cast())),
                _mm256_loadu_ps(s.as_ptr().add(i)),
            )
        };
        acc = _mm256_fmadd_ps(hv, sv, acc);
        i += 8;
    }
    let tail: f32 = h[i..n]
        .iter()
        .zip(&s[i..n])
        .map(|(&h, &s)| half(h) * s)
        .sum();
    super::kernels::x86::hsum(acc) + tail
}

/// `out[c * stride + r] = ws[r] . xs[c]` for `R` weight rows and `C` activation rows.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `ws` holds `R` rows and `xs` `C`, each with `nb`
/// whole blocks; `out` holds `(C - 1) * stride + R` values.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2<const F: u8, const R: usize, const C: usize>(
    ws: &[WeightRow],
    xs: &[ActRow],
    nb: usize,
    out: &mut [f32],
    stride: usize,
) {
    let ones = _mm256_set1_epi16(1);
    tile_body!(F, ws, xs, nb, out, stride, false, R, C, |a, c| {
        _mm256_madd_epi16(_mm256_maddubs_epi16(a, c), ones)
    })
}

/// [`tile_avx2`] with AVX-512 VNNI's `vpdpbusd` on 256-bit vectors.
///
/// # Safety
/// As [`tile_avx2`], and the CPU must have AVX-512 VL and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_vnni<const F: u8, const R: usize, const C: usize>(
    ws: &[WeightRow],
    xs: &[ActRow],
    nb: usize,
    out: &mut [f32],
    stride: usize,
) {
    let zero = _mm256_setzero_si256();
    tile_body!(F, ws, xs, nb, out, stride, true, R, C, |a, c| {
        _mm256_dpbusd_epi32(zero, a, c)
    })
}

/// A tile's kernel: weight rows, activation rows, blocks, output, its row stride.
type TileFn = unsafe fn(&[WeightRow], &[ActRow], usize, &mut [f32], usize);

/// `out[i * ws.len() + j] = ws[j] . xs[i]`, tile by tile (smaller tiles at the edges).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C (and AVX-512 VL and VNNI with `vnni`); every row holds
/// `nb` whole blocks; `out` holds `xs.len() * ws.len()` values.
pub unsafe fn product(
    vnni: bool,
    f: BlockFormat,
    ws: &[WeightRow],
    xs: &[ActRow],
    nb: usize,
    out: &mut [f32],
) {
    let pick = |r: usize, c: usize| -> TileFn {
        macro_rules! table {
            ($($r:literal, $c:literal);*) => {
                match (f, r, c) {
                    $(
                        (BlockFormat::Q8_0, $r, $c) => if vnni { tile_vnni::<0, $r, $c> } else { tile_avx2::<0, $r, $c> },
                        (BlockFormat::Q4_0, $r, $c) => if vnni { tile_vnni::<1, $r, $c> } else { tile_avx2::<1, $r, $c> },
                        (BlockFormat::Q4_1, $r, $c) => if vnni { tile_vnni::<2, $r, $c> } else { tile_avx2::<2, $r, $c> },
                    )*
                    _ => unreachable!("tiles are at most {TR} x {TC}"),
                }
            };
        }
        table!(2, 4; 2, 3; 2, 2; 2, 1; 1, 4; 1, 3; 1, 2; 1, 1)
    };
    let stride = ws.len();
    let mut i0 = 0;
    while i0 < xs.len() {
        let c = TC.min(xs.len() - i0);
        let mut j0 = 0;
        while j0 < ws.len() {
            let r = TR.min(ws.len() - j0);
            let kernel = pick(r, c);
            // SAFETY: the caller's guarantees; the tile's last output is
            // (i0 + c - 1) * stride + j0 + r - 1 < xs.len() * stride.
            unsafe {
                kernel(
                    &ws[j0..j0 + r],
                    &xs[i0..i0 + c],
                    nb,
                    &mut out[i0 * stride + j0..],
                    stride,
                )
            };
            j0 += r;
        }
        i0 += c;
    }
}
