//! Drawing a model's weights afresh (training from scratch): the names and shapes a builder
//! asks for, learnt by building it once over an empty `VarMap`, and normal draws as
//! transformers' `_init_weights` makes them.

use crate::{Result, TaskError};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use rand::Rng;

/// Every parameter `build` asks its `VarBuilder` for, sorted by name, with its shape.
pub fn param_shapes(
    build: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let map = candle_nn::VarMap::new();
    build(VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu))?;
    let mut shapes: Vec<(String, Vec<usize>)> = map
        .data()
        .lock()
        .map_err(|_| TaskError::Invalid("the parameter map's lock is poisoned".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    shapes.sort();
    Ok(shapes)
}

/// `n` draws from a normal distribution with mean 0 and `std` (Box-Muller over `rng`).
pub fn normal(n: usize, std: f64, rng: &mut impl Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}
