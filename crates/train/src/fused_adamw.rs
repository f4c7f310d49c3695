//! AdamW's update as three in-place passes over contiguous CPU storage (moments, then the
//! parameter), with no temporary tensors. The tensor-op version allocated about a dozen
//! parameter-sized tensors per update and ran its scalar multiplies on one thread: 20% of a
//! SmolLM2-135M training step.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

fn contiguous(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    l.contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("fused AdamW: {what} is not contiguous")))
}

/// `m = b1 * m + (1 - b1) * g * scale` (op `First`) or `v = b2 * v + (1 - b2) * (g * scale)^2`
/// (op `Second`).
pub struct MomentUpdate {
    pub beta: f64,
    /// Factor applied to the gradient (the accumulation's 1/N and the clipping).
    pub grad_scale: f64,
    pub squared: bool,
}

macro_rules! moment_body {
    ($m:expr, $g:expr, $t:ty, $s:expr) => {{
        let beta = $s.beta as $t;
        let one_minus = (1.0 - $s.beta) as $t;
        let scale = $s.grad_scale as $t;
        let squared = $s.squared;
        $m.par_chunks_mut(CHUNK)
            .zip($g.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                for (m, &g) in m.iter_mut().zip(g) {
                    let g = g * scale;
                    let x = if squared { g * g } else { g };
                    *m = *m * beta + x * one_minus;
                }
            });
    }};
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (a, b) = contiguous(l1, "a moment")?;
        let (c, d) = contiguous(l2, "a gradient")?;
        match (s1, s2) {
            (CpuStorage::F32(m), CpuStorage::F32(g)) => {
                moment_body!(&mut m[a..b], &g[c..d], f32, self)
            }
            (CpuStorage::F64(m), CpuStorage::F64(g)) => {
                moment_body!(&mut m[a..b], &g[c..d], f64, self)
            }
            _ => candle_core::bail!("fused AdamW: f32 or f64 moments and gradients of one dtype"),
        }
        Ok(())
    }
}

/// `p = p * (1 - lr * wd) - step_size * m / (sqrt(v) / sqrt(bc2) + eps)`, torch's order.
pub struct ParamUpdate {
    pub decay: f64,
    pub step_size: f64,
    pub bc2_sqrt: f64,
    pub eps: f64,
}

macro_rules! param_body {
    ($p:expr, $m:expr, $v:expr, $t:ty, $s:expr) => {{
        let decay = $s.decay as $t;
        let step = $s.step_size as $t;
        let bc2 = $s.bc2_sqrt as $t;
        let eps = $s.eps as $t;
        $p.par_chunks_mut(CHUNK)
            .zip($m.par_chunks(CHUNK))
            .zip($v.par_chunks(CHUNK))
            .for_each(|((p, m), v)| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    let denom = v.sqrt() / bc2 + eps;
                    *p = *p * decay - (m / denom) * step;
                }
            });
    }};
}

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adamw-param"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let (a, b) = contiguous(l1, "a parameter")?;
        let (c, d) = contiguous(l2, "a first moment")?;
        let (e, f) = contiguous(l3, "a second moment")?;
        match (s1, s2, s3) {
            (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) => {
                param_body!(&mut p[a..b], &m[c..d], &v[e..f], f32, self)
            }
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                param_body!(&mut p[a..b], &m[c..d], &v[e..f], f64, self)
            }
            _ => candle_core::bail!("fused AdamW: f32 or f64 parameters and moments of one dtype"),
        }
        Ok(())
    }
}
