//! The multiplier of inverted dropout, `keep / (1 - p)`, drawn in one parallel pass.
//!
//! candle's way (`rand_like`, `ge`, `to_dtype`, then two multiplies) took five passes over the
//! tensor; this one draws the mask directly with SplitMix64, one stream per chunk, and the
//! caller multiplies once. Each call takes the next seed of a process-wide sequence, so a run
//! repeats its masks.

use candle_core::{DType, Device, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

const CHUNK: usize = 4096;
static NEXT_SEED: AtomicU64 = AtomicU64::new(0x5EED_D20F_0000_0001);

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The next seed of the process-wide sequence every dropout mask draws from.
pub(crate) fn next_dropout_seed() -> u64 {
    NEXT_SEED.fetch_add(1, Ordering::Relaxed)
}

/// Calls `f(x, kept)` for each element of `xs`, elements `start..start + xs.len()` of the
/// stream every mask with this `seed` is drawn from: chunks of [`CHUNK`] elements, each its own
/// SplitMix64 stream (seeded from its index, one draw discarded, then one 64-bit draw per pair
/// of elements, 32 bits each); an element is dropped when its draw is below `p * 2^32`.
/// SplitMix64's state only adds a constant per draw, so a chunk's stream is entered at any
/// pair directly.
fn for_each_kept<T>(
    start: usize,
    xs: &mut [T],
    p: f32,
    seed: u64,
    mut f: impl FnMut(&mut T, bool),
) {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let threshold = (f64::from(p) * 4_294_967_296.0) as u64;
    let mut e = start;
    let mut rest = xs;
    while !rest.is_empty() {
        let (chunk, at) = (e / CHUNK, e % CHUNK);
        let n = rest.len().min(CHUNK - at);
        let base = seed ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        // After the discarded draw and the `at / 2` pairs before this element.
        let mut state = base.wrapping_add(GOLDEN.wrapping_mul(1 + (at / 2) as u64));
        let (head, tail) = rest.split_at_mut(n);
        let mut r = 0;
        for (j, x) in (at..at + n).zip(head.iter_mut()) {
            if j % 2 == 0 || j == at {
                r = splitmix64(&mut state);
            }
            let draw = (r >> (32 * (j % 2))) & 0xFFFF_FFFF;
            f(x, draw >= threshold);
        }
        rest = tail;
        e += n;
    }
}

fn mask<T: Copy + Send + Sync>(n: usize, p: f32, keep: T, drop: T, seed: u64) -> Vec<T> {
    let mut out = vec![drop; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            for_each_kept(i * CHUNK, chunk, p, seed, |o, kept| {
                if kept {
                    *o = keep;
                }
            })
        });
    out
}

/// Multiplies `x` by the multipliers (0 or `1 / (1 - p)`) that [`dropout_mask_seeded`] draws
/// for elements `start..start + x.len()` of its mask: a fused op that works on one block of a
/// tensor at a time drops that block alone, with no mask buffer.
pub(crate) fn apply_dropout_block(start: usize, x: &mut [f32], p: f32, seed: u64) {
    let keep = (1.0 / (1.0 - f64::from(p))) as f32;
    for_each_kept(start, x, p, seed, |o, kept| {
        *o *= if kept { keep } else { 0.0 }
    });
}

/// A tensor of `shape` whose elements are 0 with probability `p` and `1 / (1 - p)` otherwise,
/// for `0 < p < 1`, drawn with the next seed of the process-wide sequence.
pub fn dropout_mask(shape: &Shape, p: f32, dtype: DType, device: &Device) -> Result<Tensor> {
    dropout_mask_seeded(shape, p, dtype, device, next_dropout_seed())
}

/// [`dropout_mask`] drawn from `seed`: the same seed gives the same mask, so a fused op can
/// keep the seed instead of the mask and draw it again in its backward pass.
pub fn dropout_mask_seeded(
    shape: &Shape,
    p: f32,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> Result<Tensor> {
    if !(p > 0.0 && p < 1.0) {
        candle_core::bail!("dropout mask: probability {p} is not in (0, 1)");
    }
    let n = shape.elem_count();
    let scale = 1.0 / (1.0 - f64::from(p));
    let t = match dtype {
        DType::F64 => Tensor::from_vec(mask(n, p, scale, 0.0, seed), shape, &Device::Cpu)?,
        _ => Tensor::from_vec(mask(n, p, scale as f32, 0.0, seed), shape, &Device::Cpu)?
            .to_dtype(dtype)?,
    };
    t.to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_and_scales_the_rest() -> Result<()> {
        let m = dropout_mask(&Shape::from((1000, 100)), 0.1, DType::F32, &Device::Cpu)?;
        let v = m.flatten_all()?.to_vec1::<f32>()?;
        let dropped = v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64;
        assert!((dropped - 0.1).abs() < 0.005, "dropped share {dropped}");
        let scale = 1.0 / 0.9f32;
        assert!(v.iter().all(|&x| x == 0.0 || (x - scale).abs() < 1e-6));
        // Any block of the mask drawn alone is the same block.
        let seeded =
            dropout_mask_seeded(&Shape::from((3, 5000)), 0.3, DType::F32, &Device::Cpu, 9)?;
        let all = seeded.flatten_all()?.to_vec1::<f32>()?;
        for (start, len) in [(0, 15_000), (1, 4), (4095, 2), (4097, 9000), (12_345, 2655)] {
            let mut block = vec![1f32; len];
            apply_dropout_block(start, &mut block, 0.3, 9);
            assert_eq!(
                block,
                all[start..start + len],
                "block at {start}, {len} long"
            );
        }
        // The next call draws another mask.
        let m2 = dropout_mask(&Shape::from((1000, 100)), 0.1, DType::F32, &Device::Cpu)?;
        assert_ne!(v, m2.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }
}
