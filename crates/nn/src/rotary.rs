//! Rotary position embeddings (Su et al. 2021, "RoFormer"): the cos/sin tables, looked up per
//! position id. The rotation itself, in the "rotate half" layout, is the fused [`crate::ops::rope`].

use candle_core::{DType, Device, Result, Tensor};

/// The shape of a rotary table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotaryConfig {
    /// Per-head width; must be even (the table has `head_dim / 2` frequencies).
    pub head_dim: usize,
    /// Base of the frequencies (`rope_theta`; 10,000 in the paper).
    pub theta: f64,
    /// Number of positions the table covers (the context window).
    pub max_positions: usize,
}

/// cos/sin tables (max_positions, head_dim / 2), computed in f32 as transformers does, then
/// cast to the model's dtype: `freq_i = theta^(-2i / head_dim)`, `angle = position * freq_i`.
#[derive(Clone, Debug)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub fn new(cfg: &RotaryConfig, dtype: DType, device: &Device) -> Result<Self> {
        let hd = cfg.head_dim;
        if hd == 0 || !hd.is_multiple_of(2) {
            candle_core::bail!("rotary embeddings: head_dim {hd} must be even and positive");
        }
        let inv_freq: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / (cfg.theta as f32).powf((2 * i) as f32 / hd as f32))
            .collect();
        let n = cfg.max_positions;
        let inv = Tensor::from_vec(inv_freq, (1, hd / 2), device)?;
        let pos = Tensor::arange(0u32, n as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((n, 1))?;
        let freqs = pos.broadcast_mul(&inv)?; // (max_pos, hd/2)
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// Number of positions the table covers.
    pub fn max_positions(&self) -> usize {
        self.cos.dims().first().copied().unwrap_or(0)
    }

    /// cos, sin for position ids (B, T): each (B, T, hd/2). A position past the table is an
    /// error naming it.
    pub fn at(&self, positions: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let b = positions.len();
        let t = positions.first().map(|p| p.len()).unwrap_or(0);
        if let Some(i) = positions.iter().position(|p| p.len() != t) {
            candle_core::bail!(
                "rotary: row {i} has {} positions, expected {t}",
                positions[i].len()
            );
        }
        let flat: Vec<u32> = positions.iter().flatten().copied().collect();
        let max = self.cos.dim(0)?;
        if let Some(&p) = flat.iter().find(|&&p| p as usize >= max) {
            candle_core::bail!("position {p} is past the context window of {max} tokens");
        }
        let idx = Tensor::from_vec(flat, b * t, self.cos.device())?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&idx, 0)?.reshape((b, t, half))?;
        let sin = self.sin.index_select(&idx, 0)?.reshape((b, t, half))?;
        Ok((cos, sin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Result<Rotary> {
        let cfg = RotaryConfig {
            head_dim: 4,
            theta: 100.0,
            max_positions: 8,
        };
        Rotary::new(&cfg, DType::F32, &Device::Cpu)
    }

    #[test]
    fn angles_are_position_times_inverse_frequency() -> Result<()> {
        // head_dim 4, theta 100: frequencies 1 and 100^(-2/4) = 0.1.
        let (cos, sin) = table()?.at(&[vec![0, 3], vec![5, 1]])?;
        assert_eq!(cos.dims(), &[2, 2, 2]);
        let (cos, sin) = (cos.to_vec3::<f32>()?, sin.to_vec3::<f32>()?);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(cos[0][0][0], 1.0) && close(sin[0][0][1], 0.0));
        assert!(close(cos[0][1][0], 3f32.cos()) && close(sin[0][1][1], 0.3f32.sin()));
        assert!(close(sin[1][0][0], 5f32.sin()) && close(cos[1][0][1], 0.5f32.cos()));
        assert!(close(cos[1][1][1], 0.1f32.cos()));
        Ok(())
    }

    #[test]
    fn positions_past_the_table_and_odd_widths_are_refused() -> Result<()> {
        let err = table()?.at(&[vec![8]]).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("position 8 is past the context window of 8 tokens")),
            "{err:?}"
        );
        let odd = RotaryConfig {
            head_dim: 3,
            theta: 10.0,
            max_positions: 4,
        };
        let err = Rotary::new(&odd, DType::F32, &Device::Cpu).err();
        assert!(err.is_some_and(|e| e.to_string().contains("head_dim 3 must be even")));
        Ok(())
    }
}
