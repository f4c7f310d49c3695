//! The block-quantized product alone, for tuning its kernels: N activation rows (first
//! argument, default 32) by a random 1536 x 576 matrix in Q8_0 and Q4_1, best of 300 calls.
//! `RAYON_NUM_THREADS=1 cargo run --release -p tasklm-nn --example quant_matmul_speed -- 32`
use candle_core::{Device, Tensor};
use tasklm_nn::quant::{matmul_rows, BlockFormat, BlockQuantized};
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(32);
    for f in [BlockFormat::Q8_0, BlockFormat::Q4_1] {
        let w = Tensor::randn(0f32, 1.0, (1536, 576), &Device::Cpu).unwrap();
        let q = BlockQuantized::quantize(&w, f).unwrap();
        let x: Vec<f32> = (0..n * 576)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut best = f64::MAX;
        for _ in 0..300 {
            let t = std::time::Instant::now();
            let y = matmul_rows(&x, 576, &[&q]).unwrap();
            std::hint::black_box(y);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{f:?} n={n}: best {:.1} us, {:.1} GOP/s",
            best * 1e6,
            (2 * n * 1536 * 576) as f64 / best / 1e9
        );
    }
}
