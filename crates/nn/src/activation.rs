//! The activations a `config.json`'s `hidden_act` names, each with a backward pass.
//!
//! `gelu` is the exact erf form on the fused op ([`crate::ops::gelu_erf`]); `gelu_new` (and
//! `gelu_pytorch_tanh`) the tanh approximation; `quick_gelu` is CLIP's `x * sigmoid(1.702 x)`,
//! written as `0.5 x (1 + tanh(0.851 x))` (the same function: `sigmoid(z) = (1 + tanh(z/2)) / 2`)
//! so candle's autograd differentiates it.

use crate::ops;
use candle_core::{Result, Tensor};

/// A feed-forward activation, parsed once from `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x Φ(x)`, the exact form (`"gelu"`).
    Gelu,
    /// The tanh approximation of GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    /// `x * sigmoid(1.702 x)` (`"quick_gelu"`, CLIP).
    QuickGelu,
    Relu,
    /// `x * sigmoid(x)` (`"silu"`, `"swish"`: opus-mt's Marian).
    Silu,
}

impl Activation {
    /// The names [`Activation::from_name`] accepts, for error messages.
    pub const NAMES: &'static str =
        "gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu, silu, swish";

    /// From transformers' `hidden_act` name; None for one not supported here.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "quick_gelu" => Some(Self::QuickGelu),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu => ops::gelu_erf(xs),
            Self::GeluTanh => xs.gelu(),
            // 1.702 / 2 = 0.851.
            Self::QuickGelu => xs * ((((xs * 0.851)?.tanh()? + 1.0)? * 0.5)?),
            Self::Relu => xs.relu(),
            Self::Silu => ops::silu(xs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn quick_gelu_is_x_sigmoid_1702x_and_differentiable() -> Result<()> {
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 2.5];
        let x = Var::new(&xs, &Device::Cpu)?;
        let y = Activation::QuickGelu.forward(&x)?;
        let got = y.to_vec1::<f32>()?;
        let grads = y.sum_all()?.backward()?;
        let dx = grads.get(&x).map(|g| g.to_vec1::<f32>()).transpose()?;
        let dx = dx.unwrap_or_default();
        for (i, &v) in xs.iter().enumerate() {
            let s = 1.0 / (1.0 + (-1.702 * v).exp());
            assert!(
                (got[i] - v * s).abs() < 1e-6,
                "{v}: {} vs {}",
                got[i],
                v * s
            );
            let d = s + v * 1.702 * s * (1.0 - s);
            assert!((dx[i] - d).abs() < 1e-5, "d/dx at {v}: {} vs {d}", dx[i]);
        }
        Ok(())
    }

    #[test]
    fn names_parse_and_an_unknown_one_does_not() {
        assert_eq!(
            Activation::from_name("quick_gelu"),
            Some(Activation::QuickGelu)
        );
        assert_eq!(
            Activation::from_name("gelu_pytorch_tanh"),
            Some(Activation::GeluTanh)
        );
        assert_eq!(Activation::from_name("swish"), Some(Activation::Silu));
        assert_eq!(Activation::from_name("tanh"), None);
    }
}
