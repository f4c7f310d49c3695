use super::*;
use candle_core::quantized::QMatMul;
use candle_core::{Device, Module};

const FORMATS: [BlockFormat; 3] = [BlockFormat::Q8_0, BlockFormat::Q4_0, BlockFormat::Q4_1];

fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
    // A small LCG: the same values on every run and machine.
    let mut s = seed;
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

#[test]
fn dequantize_matches_candle_for_every_format() {
    let w = random(5, 64, 1);
    for f in FORMATS {
        let ours = BlockQuantized::quantize(&w, f).unwrap();
        let dtype = match f {
            BlockFormat::Q8_0 => GgmlDType::Q8_0,
            BlockFormat::Q4_0 => GgmlDType::Q4_0,
            BlockFormat::Q4_1 => GgmlDType::Q4_1,
        };
        let theirs = QTensor::quantize(&w, dtype)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(ours.dequantize(), theirs, "{f:?}");
    }
}

#[test]
fn every_instruction_set_gives_the_plain_dot_product() {
    let (w, x) = (random(9, 320, 2), random(3, 320, 3));
    let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let xq = QuantizedRows::new(&xs, 320).unwrap();
    for f in FORMATS {
        let m = BlockQuantized::quantize(&w, f).unwrap();
        for r in 0..9 {
            for i in 0..3 {
                let plain = Isa::Generic.dot(f, &m.row(r), &xq.row(i));
                for isa in Isa::supported() {
                    let rows: Vec<_> = (0..3).map(|i| xq.row(i)).collect();
                    let mut all = [0f32; 3];
                    isa.dot_rows(f, &m.row(r), &rows, &mut all);
                    assert!(
                        (all[i] - plain).abs() <= 1e-4 * plain.abs().max(1.0),
                        "{f:?} {isa:?} rows, row {r}: {} vs {plain}",
                        all[i]
                    );
                    let got = isa.dot(f, &m.row(r), &xq.row(i));
                    assert!(
                        (got - plain).abs() <= 1e-4 * plain.abs().max(1.0),
                        "{f:?} {isa:?} row {r}: {got} vs {plain}"
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_matches_dequantized_weights_and_candles_quantized_matmul() {
    let dev = Device::Cpu;
    let (w1, w2, x) = (random(70, 128, 4), random(130, 128, 5), random(4, 128, 6));
    for f in FORMATS {
        let (m1, m2) = (
            BlockQuantized::quantize(&w1, f).unwrap(),
            BlockQuantized::quantize(&w2, f).unwrap(),
        );
        let y = quantized_matmul(&x.reshape((2, 2, 128)).unwrap(), &[&m1, &m2]).unwrap();
        assert_eq!(y.dims(), &[2, 2, 200]);
        let y = y.reshape((4, 200)).unwrap();
        // Reference: f32 products with the dequantized weights; the gap is the activations'
        // 8-bit rounding, well under 1% of the outputs' scale.
        let dq = |m: &BlockQuantized| Tensor::from_vec(m.dequantize(), m.dims(), &dev).unwrap();
        let wd = Tensor::cat(&[dq(&m1), dq(&m2)], 0).unwrap();
        let want = x.matmul(&wd.t().unwrap()).unwrap();
        let gap = (&y - &want).unwrap().abs().unwrap().max_all().unwrap();
        let gap = gap.to_scalar::<f32>().unwrap();
        assert!(gap < 0.05, "{f:?}: max gap {gap}");
        // candle's quantized matmul also quantizes the activations (to Q8_0/Q8_1), with the
        // block scale rounded to f16 (ours stays f32): a relative 5e-4 of outputs near 6.
        let dtype = match f {
            BlockFormat::Q8_0 => GgmlDType::Q8_0,
            BlockFormat::Q4_0 => GgmlDType::Q4_0,
            BlockFormat::Q4_1 => GgmlDType::Q4_1,
        };
        let c1 = QMatMul::from_qtensor(QTensor::quantize(&w1, dtype).unwrap()).unwrap();
        let theirs = c1.forward(&x).unwrap();
        let ours = y.narrow(1, 0, 70).unwrap();
        let gap = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap();
        let gap = gap.to_scalar::<f32>().unwrap();
        assert!(gap < 5e-3, "{f:?} vs candle: max gap {gap}");
    }
}

#[test]
fn bad_shapes_are_refused_with_what_was_expected() {
    let err = BlockQuantized::from_ggml_bytes(BlockFormat::Q8_0, 2, 32, &[0; 60]).unwrap_err();
    assert!(err.to_string().contains("60 bytes, expected 68"), "{err}");
    let err = BlockQuantized::from_ggml_bytes(BlockFormat::Q4_1, 1, 40, &[]).unwrap_err();
    assert!(err.to_string().contains("40 columns"), "{err}");
    let m = BlockQuantized::quantize(&random(4, 64, 7), BlockFormat::Q8_0).unwrap();
    let err = matmul_rows(&[0.0; 32], 32, &[&m]).unwrap_err();
    assert!(err.to_string().contains("input has 32 columns"), "{err}");
}

#[test]
fn half_conversion_is_exact() {
    for bits in [0u16, 0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x8400, 0x3555] {
        let want = half_ref(bits);
        assert_eq!(kernels::f16_to_f32(bits), want, "{bits:#x}");
    }
}

fn half_ref(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}
