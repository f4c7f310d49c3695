//! GELU in its exact form, `x * Φ(x) = 0.5 x (1 + erf(x / √2))` (Hendrycks & Gimpel 2016;
//! BERT's `hidden_act: "gelu"`), fused, with a backward pass.
//!
//! erf is Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7): one exp per element instead of
//! libm's series, which dominated a BERT step's profile.

use super::kernel::{contiguous_slice, dispatch_float, dispatch_float2, simd, to_storage, Elem};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 4096;

#[inline(always)]
fn erf<T: Elem>(x: T) -> T {
    let c = |v: f64| T::from(v).unwrap_or_else(T::zero);
    let a = x.abs();
    let t = T::one() / (T::one() + c(0.327_591_1) * a);
    let poly = t
        * (c(0.254_829_592)
            + t * (c(-0.284_496_736)
                + t * (c(1.421_413_741) + t * (c(-1.453_152_027) + t * c(1.061_405_429)))));
    let y = T::one() - poly * (-a * a).fast_exp();
    if x < T::zero() {
        -y
    } else {
        y
    }
}

/// (gelu(x), d gelu / dx) = (x Φ(x), Φ(x) + x φ(x)).
#[inline(always)]
fn gelu_and_grad<T: Elem>(x: T) -> (T, T) {
    let c = |v: f64| T::from(v).unwrap_or_else(T::zero);
    let cdf = c(0.5) * (T::one() + erf(x * c(std::f64::consts::FRAC_1_SQRT_2)));
    let pdf = c(0.398_942_280_401_432_7) * (c(-0.5) * x * x).fast_exp();
    (x * cdf, cdf + x * pdf)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = dispatch_float!(self.name(), storage, |s| {
            let x = contiguous_slice(self.name(), s, layout)?;
            let mut out = vec![Default::default(); x.len()];
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(o, x)| {
                    simd(|| {
                        o.iter_mut()
                            .zip(x)
                            .for_each(|(o, &x)| *o = gelu_and_grad(x).0)
                    })
                });
            to_storage(out)
        });
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// `grad * gelu'(x)` for (x, grad).
struct GeluGrad;

fn gelu_grad_kernel<T: Elem>(x: &[T], g: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|(o, (x, g))| {
            simd(|| {
                for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                    *o = g * gelu_and_grad(x).1;
                }
            })
        });
    out
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        if l1.dims() != l2.dims() {
            candle_core::bail!("{n}: x {:?} and grad {:?} differ", l1.dims(), l2.dims());
        }
        let out = dispatch_float2!(
            n,
            (s1, l1),
            (s2, l2),
            "x and grad must share one float dtype",
            |x, g| gelu_grad_kernel(x, g)
        );
        Ok((out, l1.shape().clone()))
    }
}

/// Exact (erf) GELU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}
