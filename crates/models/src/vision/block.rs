//! The parts ViT and CLIP's vision tower share, composed from `nn`: the patch embedding (a
//! convolution whose stride is its kernel, run as an unfold and one `Linear`), the pre-norm
//! encoder block, and the stack of blocks that returns every layer's hidden states.
//!
//! The two towers differ only in names, biases and activation; those come in as
//! [`BlockNames`] and [`BlockConfig`], so the forward code exists once.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use tasklm_nn::{dropout, side_by_side_attention, Activation, AttentionParams, LayerNorm, Linear};

/// Where a block keeps its weights, relative to the block (`encoder.layer.N` in ViT,
/// `encoder.layers.N` in CLIP). Dotted paths are fine: `VarBuilder::pp` joins with dots.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockNames {
    pub norm1: &'static str,
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub out: &'static str,
    pub norm2: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
}

/// The sizes and choices of one pre-norm block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockConfig {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub eps: f64,
    pub act: Activation,
    pub qkv_bias: bool,
    /// Dropout on the attention probabilities.
    pub attn_dropout: f32,
    /// Dropout on each branch's output before the residual sum (ViT's `hidden_dropout_prob`;
    /// CLIP has none).
    pub hidden_dropout: f32,
}

/// `x + attn(LN1(x))`, then `+ fc2(act(fc1(LN2(.))))`: ViT's and CLIP's encoder layer.
#[derive(Clone, Debug)]
struct PreNormBlock {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    cfg: BlockConfig,
}

impl PreNormBlock {
    fn new(cfg: &BlockConfig, names: &BlockNames, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden, cfg.intermediate);
        Ok(Self {
            norm1: LayerNorm::new(h, cfg.eps, vb.pp(names.norm1))?,
            query: Linear::new(h, h, cfg.qkv_bias, vb.pp(names.query))?,
            key: Linear::new(h, h, cfg.qkv_bias, vb.pp(names.key))?,
            value: Linear::new(h, h, cfg.qkv_bias, vb.pp(names.value))?,
            out: Linear::new(h, h, true, vb.pp(names.out))?,
            norm2: LayerNorm::new(h, cfg.eps, vb.pp(names.norm2))?,
            fc1: Linear::new(h, i, true, vb.pp(names.fc1))?,
            fc2: Linear::new(i, h, true, vb.pp(names.fc2))?,
            cfg: *cfg,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = x.dim(2)?;
        let nh = self.cfg.heads;
        let normed = self.norm1.forward(x)?;
        let (q, k, v) = (
            self.query.forward_t(&normed, train)?, // (B, T, H), heads side by side
            self.key.forward_t(&normed, train)?,
            self.value.forward_t(&normed, train)?,
        );
        let params = AttentionParams {
            scale: 1.0 / ((h / nh) as f64).sqrt(),
            dropout: self.cfg.attn_dropout,
            train,
        };
        // Every image has all its patches: no padding, no mask.
        let y = side_by_side_attention(&q, &k, &v, (nh, nh), None, params)?; // (B, T, H)
        let y = self.out.forward_t(&y, train)?;
        let x = (x + dropout(&y, self.cfg.hidden_dropout, train)?)?;
        let up = self.fc1.forward_t(&self.norm2.forward(&x)?, train)?; // (B, T, I)
        let y = self.fc2.forward_t(&self.cfg.act.forward(&up)?, train)?; // (B, T, H)
        x + dropout(&y, self.cfg.hidden_dropout, train)?
    }
}

/// A stack of pre-norm blocks at `{vb}.{i}`.
#[derive(Clone, Debug)]
pub(crate) struct BlockStack {
    blocks: Vec<PreNormBlock>,
}

impl BlockStack {
    /// `vb` is the list's prefix (`encoder.layer`, `encoder.layers`).
    pub fn new(n: usize, cfg: &BlockConfig, names: &BlockNames, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..n)
            .map(|i| PreNormBlock::new(cfg, names, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { blocks })
    }

    /// The input and each block's output: `n + 1` tensors (B, T, H), as transformers'
    /// `hidden_states` (the last one before any final norm).
    pub fn forward_all(&self, x: Tensor, train: bool) -> Result<Vec<Tensor>> {
        let mut states = Vec::with_capacity(self.blocks.len() + 1);
        states.push(x);
        for block in &self.blocks {
            let next = match states.last() {
                Some(prev) => block.forward(prev, train)?,
                None => candle_core::bail!("vision encoder: no input"),
            };
            states.push(next);
        }
        Ok(states)
    }
}

/// A tower's activation from its `hidden_act` (an error lists the supported names).
pub(crate) fn tower_activation(name: &str) -> std::result::Result<Activation, String> {
    Activation::from_name(name).ok_or_else(|| {
        format!(
            "hidden_act `{name}` is not supported ({})",
            Activation::NAMES
        )
    })
}

/// What every vision tower's forward pass relies on: heads that divide the width, a known
/// activation, a patch grid that tiles the image.
pub(crate) fn check_tower(
    hidden_size: usize,
    heads: usize,
    hidden_act: &str,
    grid: PatchGrid,
) -> std::result::Result<(), String> {
    if heads == 0 || !hidden_size.is_multiple_of(heads) {
        return Err(format!(
            "hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({heads})"
        ));
    }
    tower_activation(hidden_act)?;
    grid.validate()
}

/// Sizes of the patch grid an encoder was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PatchGrid {
    pub channels: usize,
    pub image_size: usize,
    pub patch: usize,
}

impl PatchGrid {
    /// Patches per image.
    pub fn patches(&self) -> usize {
        (self.image_size / self.patch).pow(2)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.patch == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(self.patch) {
            return Err(format!(
                "image_size ({}) must be a positive multiple of patch_size ({})",
                self.image_size, self.patch
            ));
        }
        if self.channels == 0 {
            return Err("num_channels must be positive".into());
        }
        Ok(())
    }
}

/// A `Conv2d(C, H, kernel = stride = p)` as transformers stores it (weight (H, C, p, p)): the
/// image cut into non-overlapping p x p patches, each flattened in (c, y, x) order, times the
/// weight viewed as (H, C p p). The view is a reshape of the loaded tensor, so a trainer's
/// gradient reaches the 4-D weight.
#[derive(Clone, Debug)]
pub(crate) struct PatchEmbedding {
    proj: Linear,
    grid: PatchGrid,
}

impl PatchEmbedding {
    pub fn new(grid: PatchGrid, hidden: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let (c, p) = (grid.channels, grid.patch);
        let weight = vb
            .get((hidden, c, p, p), "weight")?
            .reshape((hidden, c * p * p))?;
        let bias = if bias {
            Some(vb.get(hidden, "bias")?)
        } else {
            None
        };
        Ok(Self {
            proj: Linear::from_weights(weight, bias),
            grid,
        })
    }

    /// (B, C, S, S) pixels -> (B, patches, H).
    pub fn forward(&self, pixels: &Tensor, train: bool) -> Result<Tensor> {
        let PatchGrid {
            channels,
            image_size,
            patch: p,
        } = self.grid;
        let (b, c, hh, ww) = pixels.dims4()?;
        if c != channels || hh != image_size || ww != image_size {
            candle_core::bail!(
                "pixel values of shape ({b}, {c}, {hh}, {ww}); this vision encoder takes \
                 ({channels}, {image_size}, {image_size}) images"
            );
        }
        let g = image_size / p;
        let patches = pixels
            .reshape((b, c, g, p, g, p))? // (B, C, gy, py, gx, px)
            .permute((0, 2, 4, 1, 3, 5))? // (B, gy, gx, C, py, px)
            .contiguous()?
            .reshape((b, g * g, c * p * p))?; // (B, patches, C p p)
        self.proj.forward_t(&patches, train) // (B, patches, H)
    }
}
