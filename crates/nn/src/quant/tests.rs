use super::*;
use candle_core::quantized::QMatMul;
use candle_core::{Device, Module};
use std::sync::Arc;

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
    // Five activation rows: all five go through the register tiles, each alone through the
    // direct kernel. 320 columns: a group of eight blocks and two blocks after it.
    const N: usize = 5;
    let (w, x) = (random(9, 320, 2), random(N, 320, 3));
    let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let xq = QuantizedRows::new(&xs, 320).unwrap();
    let rows: Vec<_> = (0..N).map(|i| xq.row(i)).collect();
    for f in FORMATS {
        let m = BlockQuantized::quantize(&w, f).unwrap();
        for r in 0..9 {
            for isa in Isa::supported() {
                let mut all = [0f32; N];
                isa.dot_rows(f, &m.row(r), &rows, &mut all);
                for (i, x) in rows.iter().enumerate() {
                    let plain = Isa::Generic.dot(f, &m.row(r), x);
                    let close = |v: f32| (v - plain).abs() <= 1e-4 * plain.abs().max(1.0);
                    assert!(
                        close(all[i]),
                        "{f:?} {isa:?} tiled, row {r}: {} vs {plain}",
                        all[i]
                    );
                    let got = isa.dot(f, &m.row(r), x);
                    assert!(
                        close(got),
                        "{f:?} {isa:?} direct, row {r}: {got} vs {plain}"
                    );
                }
            }
        }
        // All nine weight rows by the five activation rows: full tiles and both edges.
        let ws: Vec<_> = (0..9).map(|r| m.row(r)).collect();
        for isa in Isa::supported() {
            let mut out = [0f32; 9 * N];
            isa.product(f, &ws, &rows, &mut out);
            for (i, x) in rows.iter().enumerate() {
                for (j, w) in ws.iter().enumerate() {
                    let plain = Isa::Generic.dot(f, w, x);
                    let got = out[i * 9 + j];
                    assert!(
                        (got - plain).abs() <= 1e-4 * plain.abs().max(1.0),
                        "{f:?} {isa:?} product ({i}, {j}): {got} vs {plain}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_instruction_set_quantizes_activations_to_the_same_bytes() {
    let mut x = random(4, 256, 7)
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    // Ties (x / d exactly k + 0.5), a zero block and a block with one large value.
    x[0] = 127.0;
    x[1] = 0.5;
    x[2] = 1.5;
    x[3] = -2.5;
    x[32..64].iter_mut().for_each(|v| *v = 0.0);
    x[64] = -1000.0;
    let nb = x.len() / BLOCK;
    let run = |isa: Isa| {
        let (mut d, mut s, mut q) = (vec![0f32; nb], vec![0f32; nb], vec![0i8; x.len()]);
        isa.quantize_blocks(&x, &mut d, &mut s, &mut q);
        (d, s, q)
    };
    let plain = run(Isa::Generic);
    assert_eq!(plain.2[..4], [127, 0, 2, -2], "ties go to even");
    for isa in Isa::supported() {
        assert_eq!(run(isa), plain, "{isa:?}");
    }
}

#[test]
fn matmul_matches_dequantized_weights_and_candles_quantized_matmul() {
    let dev = Device::Cpu;
    let (w1, w2, x) = (random(70, 128, 4), random(130, 128, 5), random(4, 128, 6));
    for f in FORMATS {
        let (m1, m2) = (
            Arc::new(BlockQuantized::quantize(&w1, f).unwrap()),
            Arc::new(BlockQuantized::quantize(&w2, f).unwrap()),
        );
        let y =
            quantized_matmul(&x.reshape((2, 2, 128)).unwrap(), &[m1.clone(), m2.clone()]).unwrap();
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

/// (a, b) as row-major f32 values.
fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn every_instruction_set_dequantizes_as_the_plain_formula() {
    let w = random(3, 320, 8);
    for f in FORMATS {
        let m = BlockQuantized::quantize(&w, f).unwrap();
        let want = m.dequantize();
        for isa in Isa::supported() {
            for r in 0..3 {
                // Blocks 2..7 of the row, as a backward task reads them.
                let mut got = vec![f32::NAN; 5 * BLOCK];
                isa.dequantize_blocks(f, &m.row(r), 2..7, &mut got);
                let from = r * 320 + 2 * BLOCK;
                assert_eq!(got, want[from..from + 5 * BLOCK], "{f:?} {isa:?} row {r}");
            }
        }
    }
}

#[test]
fn transposed_product_is_the_input_gradient_of_a_dense_matmul_on_every_isa() {
    // Several matrices (as q/k/v), more rows than a panel and more columns than a task.
    let dev = Device::Cpu;
    let (w1, w2, g) = (
        random(300, 1088, 9),
        random(40, 1088, 10),
        random(5, 340, 11),
    );
    for f in FORMATS {
        let (m1, m2) = (
            BlockQuantized::quantize(&w1, f).unwrap(),
            BlockQuantized::quantize(&w2, f).unwrap(),
        );
        let dq = |m: &BlockQuantized| Tensor::from_vec(m.dequantize(), m.dims(), &dev).unwrap();
        let wd = Tensor::cat(&[dq(&m1), dq(&m2)], 0).unwrap(); // (340, 1088)
        let want = values(&g.matmul(&wd).unwrap()); // (5, 1088)
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        for isa in Isa::supported() {
            let got = matmul_rows_transposed(&values(&g), 5, &[&m1, &m2], isa).unwrap();
            assert_eq!(got.len(), want.len());
            let gap = got
                .iter()
                .zip(&want)
                .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(
                gap <= 1e-5 * scale,
                "{f:?} {isa:?}: max gap {gap} of {scale}"
            );
        }
    }
}

#[test]
fn autograd_gives_the_input_the_dense_gradient_and_the_weights_none() {
    use candle_core::Var;
    let dev = Device::Cpu;
    let (w1, w2) = (random(70, 128, 12), random(33 * 2, 128, 13));
    let x = Var::from_tensor(&random(6, 128, 14).reshape((2, 3, 128)).unwrap()).unwrap();
    let coef = random(6, 136, 15).reshape((2, 3, 136)).unwrap();
    for f in FORMATS {
        let mats = [
            Arc::new(BlockQuantized::quantize(&w1, f).unwrap()),
            Arc::new(BlockQuantized::quantize(&w2, f).unwrap()),
        ];
        // loss = sum(coef * y): its gradient for y is coef.
        let y = quantized_matmul(x.as_tensor(), &mats).unwrap();
        let grads = (&y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
        let got = grads.get(x.as_tensor()).expect("x has a gradient");
        let dq = |m: &BlockQuantized| Tensor::from_vec(m.dequantize(), m.dims(), &dev).unwrap();
        let wd = Tensor::cat(&[dq(&mats[0]), dq(&mats[1])], 0).unwrap(); // (136, 128)
        let want = coef.broadcast_matmul(&wd).unwrap(); // (2, 3, 128)
        assert_eq!(got.dims(), &[2, 3, 128]);
        let gap = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
        let gap = gap.to_scalar::<f32>().unwrap();
        assert!(gap < 1e-4, "{f:?}: max gap {gap}");
        // Without a tracked input nothing is recorded.
        let plain = quantized_matmul(&x.as_tensor().detach(), &mats).unwrap();
        assert!(!plain.track_op());
    }
}

#[test]
fn the_backward_refuses_a_gradient_of_the_wrong_size() {
    let m = BlockQuantized::quantize(&random(4, 64, 16), BlockFormat::Q4_0).unwrap();
    let err = matmul_rows_transposed(&[0.0; 7], 2, &[&m], Isa::Generic).unwrap_err();
    assert!(err.to_string().contains("expected 2 x 4"), "{err}");
}
