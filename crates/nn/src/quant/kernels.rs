//! The block dot products: one weight row against one quantized activation row, for each
//! format, in plain Rust and with AVX2 or AVX-512 VNNI integer dot products (picked at run time
//! by [`Isa::detect`]). Written after llama.cpp's `ggml-cpu` `vec_dot_q8_0_q8_0` and
//! `vec_dot_q4_1_q8_1`: Q8_0 uses `|w| . sign(x, w)` so the unsigned-by-signed instruction
//! applies; Q4 nibbles are unsigned already.

use super::{BlockFormat, BLOCK};
use std::sync::OnceLock;

/// One weight row: per block an f16 scale (and offset), and the quants.
pub struct WeightRow<'a> {
    pub quants: &'a [u8],
    pub scales: &'a [u16],
    pub offsets: &'a [u16],
}

/// One activation row: per block `d`, `d * sum(q)`, and 32 quants.
pub struct ActRow<'a> {
    pub quants: &'a [i8],
    pub scales: &'a [f32],
    pub scaled_sums: &'a [f32],
}

/// The instruction set the dot products run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 VNNI `vpdpbusd` on 256-bit vectors (with AVX-512 VL).
    Avx512Vnni,
    /// AVX2 `vpmaddubsw` + `vpmaddwd`, FMA and F16C.
    Avx2,
    /// Plain Rust.
    Generic,
}

impl Isa {
    /// The best this CPU has, checked once. `TASKLM_ISA=avx2|generic` asks for a lesser one.
    pub fn detect() -> Self {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Self::supported().first().copied().unwrap_or(Isa::Generic);
            match std::env::var("TASKLM_ISA").as_deref() {
                Ok("generic") => Isa::Generic,
                Ok("avx2") if Self::supported().contains(&Isa::Avx2) => Isa::Avx2,
                _ => best,
            }
        })
    }

    /// Every instruction set this CPU can run, best first.
    pub fn supported() -> Vec<Self> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
            {
                out.push(Isa::Avx512Vnni);
            }
            if avx2 {
                out.push(Isa::Avx2);
            }
        }
        out.push(Isa::Generic);
        out
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Avx2 => "avx2",
            Isa::Generic => "generic",
        }
    }

    /// `out[i * ws.len() + j] = ws[j] . xs[i]`. From [`TILED_ROWS`] activation rows on, register
    /// tiles of weight rows by activation rows ([`super::tiles`]); below it (decoding) one pass
    /// over each weight row per activation row, nothing staged: the weight row is a few
    /// hundred bytes and stays in L1.
    pub fn product(self, f: BlockFormat, ws: &[WeightRow], xs: &[ActRow], out: &mut [f32]) {
        let nb = ws
            .iter()
            .map(|w| weight_blocks(f, w))
            .chain(xs.iter().map(act_blocks))
            .min()
            .unwrap_or(0);
        let m = ws.len();
        let n = xs.len().min(out.len() / m.max(1));
        let (xs, out) = (&xs[..n], &mut out[..n * m]);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::supported` checked the features; `nb` bounds every read; `out`
            // holds n * m values.
            Isa::Avx512Vnni | Isa::Avx2 if n >= TILED_ROWS => unsafe {
                super::tiles::product(self == Isa::Avx512Vnni, f, ws, xs, nb, out)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx512Vnni => unsafe {
                for (i, x) in xs.iter().enumerate() {
                    for (j, w) in ws.iter().enumerate() {
                        out[i * m + j] = x86::dot_one_vnni(f, w, x, nb);
                    }
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe {
                for (i, x) in xs.iter().enumerate() {
                    for (j, w) in ws.iter().enumerate() {
                        out[i * m + j] = x86::dot_one_avx2(f, w, x, nb);
                    }
                }
            },
            _ => {
                for (i, x) in xs.iter().enumerate() {
                    for (j, w) in ws.iter().enumerate() {
                        out[i * m + j] = dot_generic(f, w, x, nb);
                    }
                }
            }
        }
    }

    /// `out[i] = w . xs[i]` for every activation row.
    pub fn dot_rows(self, f: BlockFormat, w: &WeightRow, xs: &[ActRow], out: &mut [f32]) {
        self.product(f, std::slice::from_ref(w), xs, out)
    }

    /// `sum_j w_j x_j` over the row, from the quantized forms.
    pub fn dot(self, f: BlockFormat, w: &WeightRow, x: &ActRow) -> f32 {
        let mut out = [0f32];
        self.dot_rows(f, w, std::slice::from_ref(x), &mut out);
        out[0]
    }
}

/// From this many activation rows on, the product goes tile by tile.
const TILED_ROWS: usize = 4;

/// Blocks a weight row holds in full.
fn weight_blocks(f: BlockFormat, w: &WeightRow) -> usize {
    let nb = w.scales.len().min(w.quants.len() / f.quant_bytes());
    if f == BlockFormat::Q4_1 {
        nb.min(w.offsets.len())
    } else {
        nb
    }
}

/// Blocks an activation row holds in full.
fn act_blocks(x: &ActRow) -> usize {
    x.scales
        .len()
        .min(x.scaled_sums.len())
        .min(x.quants.len() / BLOCK)
}

/// IEEE half to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (31, m) => sign | (0xff << 23) | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

fn dot_generic(f: BlockFormat, w: &WeightRow, x: &ActRow, nb: usize) -> f32 {
    let mut acc = 0f32;
    for b in 0..nb {
        let xq = &x.quants[b * BLOCK..(b + 1) * BLOCK];
        let dw = f16_to_f32(w.scales[b]);
        let isum: i32 = match f {
            BlockFormat::Q8_0 => w.quants[b * 32..(b + 1) * 32]
                .iter()
                .zip(xq)
                .map(|(&a, &c)| i32::from(a as i8) * i32::from(c))
                .sum(),
            BlockFormat::Q4_0 | BlockFormat::Q4_1 => {
                let q = &w.quants[b * 16..(b + 1) * 16];
                (0..16)
                    .map(|i| {
                        i32::from(q[i] & 15) * i32::from(xq[i])
                            + i32::from(q[i] >> 4) * i32::from(xq[i + 16])
                    })
                    .sum()
            }
        };
        acc += dw * x.scales[b] * isum as f32;
        acc += match f {
            BlockFormat::Q8_0 => 0.0,
            BlockFormat::Q4_0 => -8.0 * dw * x.scaled_sums[b],
            BlockFormat::Q4_1 => f16_to_f32(w.offsets[b]) * x.scaled_sums[b],
        };
    }
    acc
}

impl Isa {
    /// Quantizes f32 blocks of 32 to 8 bits: `d = max|x| / 127`, `q = round(x / d)` (ties to
    /// even), and `d * sum(q)` per block; every instruction set gives the same bytes.
    pub fn quantize_blocks(
        self,
        x: &[f32],
        scales: &mut [f32],
        scaled_sums: &mut [f32],
        quants: &mut [i8],
    ) {
        let nb = (x.len() / BLOCK)
            .min(scales.len())
            .min(scaled_sums.len())
            .min(quants.len() / BLOCK);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::supported` checked AVX2; `nb` bounds every block.
            Isa::Avx512Vnni | Isa::Avx2 => unsafe {
                x86::quantize_blocks_avx2(x, scales, scaled_sums, quants, nb)
            },
            _ => crate::ops::simd(|| {
                for (b, blk) in x.chunks_exact(BLOCK).take(nb).enumerate() {
                    let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                    let mut sum = 0i32;
                    for (q, &v) in quants[b * BLOCK..(b + 1) * BLOCK].iter_mut().zip(blk) {
                        let r = (v * id).round_ties_even() as i32;
                        *q = r as i8;
                        sum += r;
                    }
                    scales[b] = d;
                    scaled_sums[b] = d * sum as f32;
                }
            }),
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::{ActRow, BlockFormat, WeightRow};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(in crate::quant) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// f16 bits to f32 (F16C), one value.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(in crate::quant) fn half(h: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }

    /// 32 unsigned nibbles of a Q4 block: the low nibbles (elements 0..16), then the high ones.
    ///
    /// # Safety
    /// `p` must point at 16 readable bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(in crate::quant) unsafe fn nibbles(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 16 bytes at `p`.
        let raw = unsafe { _mm_loadu_si128(p.cast()) };
        let m = _mm_set1_epi8(15);
        let lo = _mm_and_si128(raw, m);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m);
        _mm256_set_m128i(hi, lo)
    }

    /// [`super::Isa::quantize_blocks`] eight lanes at a time, the bytes packed as llama.cpp's
    /// `quantize_row_q8_0` packs them.
    ///
    /// # Safety
    /// The CPU must have AVX2; every slice holds `nb` blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_blocks_avx2(
        x: &[f32],
        scales: &mut [f32],
        scaled_sums: &mut [f32],
        quants: &mut [i8],
        nb: usize,
    ) {
        let sign = _mm256_set1_ps(-0.0);
        for b in 0..nb {
            // SAFETY: b < nb, so 32 floats and 32 bytes at b * 32 are in bounds.
            let v: [__m256; 4] =
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(b * 32 + i * 8)) });
            let a = v.map(|v| _mm256_andnot_ps(sign, v));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            let d = amax / 127.0;
            let id = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
            let q = v.map(|v| {
                _mm256_cvtps_epi32(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(_mm256_mul_ps(v, id)))
            });
            let total =
                _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let t = _mm_add_epi32(
                _mm256_castsi256_si128(total),
                _mm256_extracti128_si256(total, 1),
            );
            let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b01_00_11_10));
            let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b10_11_00_01));
            let sum = _mm_cvtsi128_si32(t);
            // Packing works within 128-bit lanes; the permute puts the eight groups of four
            // back in order.
            let p = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            // SAFETY: as above.
            unsafe { _mm256_storeu_si256(quants.as_mut_ptr().add(b * 32).cast(), p) };
            scales[b] = d;
            scaled_sums[b] = d * sum as f32;
        }
    }

    /// One weight row against one activation row, in groups of eight blocks: the eight weight
    /// scales (and Q4_1 offsets) converted in one vector and multiplied by the activation
    /// scales in one, the Q4_1 offset terms accumulated as a vector, the integer dots into two
    /// accumulators; the last blocks one by one. Nothing is staged.
    macro_rules! dot_one_body {
        ($f:expr, $w:expr, $x:expr, $nb:expr, $q8_biased:expr, |$a:ident, $c:ident| $idot:expr) => {{
            let biased: bool = $q8_biased;
            let (f, w, x, nb): (BlockFormat, &WeightRow, &ActRow, usize) = ($f, $w, $x, $nb);
            let (wq, xq) = (w.quants.as_ptr(), x.quants.as_ptr());
            // SAFETY (every block below): b < nb blocks, in bounds of both rows (`blocks`).
            let block = |b: usize| -> __m256i {
                let xv = unsafe { _mm256_loadu_si256(xq.add(b * 32).cast()) };
                let ($a, $c) = match f {
                    BlockFormat::Q8_0 => {
                        let wv = unsafe { _mm256_loadu_si256(wq.add(b * 32).cast()) };
                        if biased {
                            (_mm256_xor_si256(wv, _mm256_set1_epi8(-128)), xv)
                        } else {
                            (_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv))
                        }
                    }
                    _ => (unsafe { nibbles(wq.add(b * 16)) }, xv),
                };
                $idot
            };
            // The weights' offset (128 for biased Q8_0 bytes, 8 for Q4_0 nibbles) taken back:
            // `- o d_w (d_x sum q_x)`; Q4_1's offset term is `+ m (d_x sum q_x)`.
            let shift = match f {
                BlockFormat::Q8_0 if biased => -128.0,
                BlockFormat::Q4_0 => -8.0,
                _ => 0.0,
            };
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut offs = _mm256_setzero_ps();
            let mut cs = [0f32; 8];
            let mut b = 0;
            while b + 8 <= nb {
                let (dw, dx, sx) = unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(w.scales.as_ptr().add(b).cast())),
                        _mm256_loadu_ps(x.scales.as_ptr().add(b)),
                        _mm256_loadu_ps(x.scaled_sums.as_ptr().add(b)),
                    )
                };
                unsafe { _mm256_storeu_ps(cs.as_mut_ptr(), _mm256_mul_ps(dw, dx)) };
                offs = if f == BlockFormat::Q4_1 {
                    let m = unsafe {
                        _mm256_cvtph_ps(_mm_loadu_si128(w.offsets.as_ptr().add(b).cast()))
                    };
                    _mm256_fmadd_ps(m, sx, offs)
                } else {
                    _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(shift), dw), sx, offs)
                };
                for j in (0..8).step_by(2) {
                    let (p0, p1) = (block(b + j), block(b + j + 1));
                    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(cs[j]), _mm256_cvtepi32_ps(p0), acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(cs[j + 1]), _mm256_cvtepi32_ps(p1), acc1);
                }
                b += 8;
            }
            let mut tail = 0f32;
            while b < nb {
                let dw = half(w.scales[b]);
                let p = _mm256_cvtepi32_ps(block(b));
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.scales[b]), p, acc0);
                tail += if f == BlockFormat::Q4_1 {
                    let m = half(w.offsets[b]);
                    m * x.scaled_sums[b]
                } else {
                    shift * dw * x.scaled_sums[b]
                };
                b += 1;
            }
            hsum(_mm256_add_ps(acc0, acc1)) + hsum(offs) + tail
        }};
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `nb` blocks must be in bounds of both rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_one_avx2(f: BlockFormat, w: &WeightRow, x: &ActRow, nb: usize) -> f32 {
        let ones = _mm256_set1_epi16(1);
        dot_one_body!(f, w, x, nb, false, |a, c| _mm256_madd_epi16(
            _mm256_maddubs_epi16(a, c),
            ones
        ))
    }

    /// # Safety
    /// As [`dot_one_avx2`], and the CPU must have AVX-512 VL and VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn dot_one_vnni(f: BlockFormat, w: &WeightRow, x: &ActRow, nb: usize) -> f32 {
        let zero = _mm256_setzero_si256();
        dot_one_body!(f, w, x, nb, true, |a, c| _mm256_dpbusd_epi32(zero, a, c))
    }
}
