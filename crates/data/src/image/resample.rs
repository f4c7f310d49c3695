//! PIL's resampling (`Image.resize` with `BILINEAR` or `BICUBIC`), which transformers' image
//! processors use, reproduced in integer arithmetic so the pixels match PIL's exactly.
//!
//! Reference: Pillow `src/libImaging/Resample.c` (`precompute_coeffs`,
//! `normalize_coeffs_8bpc`, `ImagingResampleHorizontal_8bpc`, `..Vertical_8bpc`). Each axis is
//! a separate pass (horizontal first, each only when that side changes); an output pixel is a
//! weighted sum of the input pixels under the filter, whose support is scaled by the
//! downscaling factor (antialiasing); weights are normalised to sum to 1, then held as 22-bit
//! fixed-point integers, and each pass rounds and clamps to 0..=255.

/// The filters of transformers' `resample` codes that tasklm implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// PIL `BILINEAR` (2): a triangle of support 1.
    Bilinear,
    /// PIL `BICUBIC` (3): Keys' cubic with a = -0.5, support 2.
    Bicubic,
}

impl Resample {
    /// From PIL's code (`preprocessor_config.json`'s `resample`).
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (r, g, b).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output position, the first input position and the fixed-point weights of the
/// inputs from there.
struct Coeffs {
    starts: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn coeffs(in_size: usize, out_size: usize, filter: Resample) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero, as Rust's `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let w: Vec<f64> = (0..xmax.max(0))
            .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss))
            .collect();
        let total: f64 = w.iter().sum();
        let fixed = w
            .iter()
            .map(|&k| {
                let k = if total != 0.0 { k / total } else { k };
                let v = k * f64::from(1u32 << PRECISION_BITS);
                // normalize_coeffs_8bpc rounds half away from zero.
                if k < 0.0 {
                    (v - 0.5) as i32
                } else {
                    (v + 0.5) as i32
                }
            })
            .collect();
        starts.push(xmin as usize);
        weights.push(fixed);
    }
    Coeffs { starts, weights }
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// One pass along an axis: `n` lines of `len` pixels, pixel `i` of line `l` at
/// `(l * line_stride + i * pixel_stride) * 3`.
struct Axis {
    lines: usize,
    line_stride: usize,
    pixel_stride: usize,
}

fn pass(src: &[u8], src_axis: &Axis, dst: &mut [u8], dst_axis: &Axis, c: &Coeffs) {
    let half = 1i64 << (PRECISION_BITS - 1);
    for l in 0..src_axis.lines {
        for (o, (&start, w)) in c.starts.iter().zip(&c.weights).enumerate() {
            let mut acc = [half; 3];
            for (j, &k) in w.iter().enumerate() {
                let p = (l * src_axis.line_stride + (start + j) * src_axis.pixel_stride) * 3;
                for (ch, a) in acc.iter_mut().enumerate() {
                    *a += i64::from(src[p + ch]) * i64::from(k);
                }
            }
            let q = (l * dst_axis.line_stride + o * dst_axis.pixel_stride) * 3;
            for (ch, a) in acc.iter().enumerate() {
                dst[q + ch] = clip8(*a);
            }
        }
    }
}

/// `img` resized to `width` x `height` as PIL's `Image.resize(.., resample)` does.
pub fn resize(img: &Rgb8, width: usize, height: usize, filter: Resample) -> Rgb8 {
    let mut cur = img.clone();
    if width != cur.width {
        let c = coeffs(cur.width, width, filter);
        let mut out = vec![0u8; width * cur.height * 3];
        let src = Axis {
            lines: cur.height,
            line_stride: cur.width,
            pixel_stride: 1,
        };
        let dst = Axis {
            lines: cur.height,
            line_stride: width,
            pixel_stride: 1,
        };
        pass(&cur.data, &src, &mut out, &dst, &c);
        cur = Rgb8 {
            width,
            height: cur.height,
            data: out,
        };
    }
    if height != cur.height {
        let c = coeffs(cur.height, height, filter);
        let mut out = vec![0u8; cur.width * height * 3];
        // Columns are the lines: pixel i of column l is row i.
        let src = Axis {
            lines: cur.width,
            line_stride: 1,
            pixel_stride: cur.width,
        };
        let dst = Axis {
            lines: cur.width,
            line_stride: 1,
            pixel_stride: cur.width,
        };
        pass(&cur.data, &src, &mut out, &dst, &c);
        cur = Rgb8 {
            width: cur.width,
            height,
            data: out,
        };
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_each_output_sum_to_one_in_fixed_point() {
        for filter in [Resample::Bilinear, Resample::Bicubic] {
            for (i, o) in [(64, 32), (64, 72), (50, 36), (37, 36)] {
                let c = coeffs(i, o, filter);
                for w in &c.weights {
                    let s: i64 = w.iter().map(|&k| i64::from(k)).sum();
                    assert!((s - (1 << PRECISION_BITS)).abs() <= w.len() as i64, "{s}");
                }
            }
        }
    }

    #[test]
    fn a_constant_image_stays_constant_and_halving_averages_pairs() {
        let img = Rgb8 {
            width: 4,
            height: 2,
            data: [10u8, 20, 30].repeat(8),
        };
        for filter in [Resample::Bilinear, Resample::Bicubic] {
            let out = resize(&img, 7, 3, filter);
            assert_eq!((out.width, out.height), (7, 3));
            assert!(out.data.chunks(3).all(|p| p == [10, 20, 30]), "{filter:?}");
        }
        // Bilinear halving of a row 0, 100, 200, 250: support 2 around each centre gives
        // weights 1/8, 3/8, 3/8, 1/8 -> (0*1 + 100*3 + 200*3 + 250*1) / 8 = 143.75 and the
        // right pixel (100*1 + 200*3 + 250*3 + 250*0) clipped at the edge.
        let row = Rgb8 {
            width: 4,
            height: 1,
            data: [0u8, 100, 200, 250]
                .iter()
                .flat_map(|&v| [v, v, v])
                .collect(),
        };
        let out = resize(&row, 2, 1, Resample::Bilinear);
        // Left: inputs 0..3 with weights 3/8, 3/8, 1/8 renormalised over 7/8: (0*3 + 100*3 +
        // 200*1) / 7 = 71.4; right: inputs 1..4, weights 1/8, 3/8, 3/8: (100 + 600 + 750) / 7.
        assert_eq!(out.data, vec![71, 71, 71, 207, 207, 207]);
    }
}
