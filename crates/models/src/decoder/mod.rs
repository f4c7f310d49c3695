//! Decoder-only backbones and the contract the generation loop and trainers use.

pub mod llama;

use candle_core::{Device, Tensor};
use tasklm_nn::{KvCache, Linear};

/// One forward call: new tokens plus the key mask over cached + new positions.
///
/// Some positions may take input embeddings instead of their token's embedding (`embeds`):
/// what a vision-language model splices in at an `<image>` placeholder. The ids at those
/// positions are placeholders and are not looked up.
#[derive(Clone, Debug)]
pub struct DecoderInput {
    /// (B, T) u32 token ids.
    pub input_ids: Tensor,
    /// `key_mask[b][j]` is 1 for a real key and 0 for padding, over `past + T` keys.
    pub key_mask: Vec<Vec<u8>>,
    /// Embeddings that replace the token embeddings at some positions; empty for ids only.
    pub embeds: Vec<EmbedSpan>,
}

/// Input embeddings for positions `start..start + n` of batch row `row` (positions counted
/// within this input's T, left padding included).
#[derive(Clone, Debug)]
pub struct EmbedSpan {
    pub row: usize,
    pub start: usize,
    /// (n, H) embeddings; converted to the model's dtype and device. Gradients flow back to
    /// them in training.
    pub embeds: Tensor,
}

impl DecoderInput {
    /// Token ids and key mask, with no spliced embeddings.
    pub fn new(input_ids: Tensor, key_mask: Vec<Vec<u8>>) -> Self {
        Self {
            input_ids,
            key_mask,
            embeds: Vec::new(),
        }
    }

    /// The same input with `spans` of embeddings in place of some positions' tokens.
    pub fn with_embeds(mut self, spans: Vec<EmbedSpan>) -> Self {
        self.embeds = spans;
        self
    }

    /// Unpadded rows of equal length, with no cache.
    pub fn from_rows(rows: &[Vec<u32>], device: &Device) -> candle_core::Result<Self> {
        let t = rows.first().map(|r| r.len()).unwrap_or(0);
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Ok(Self {
            input_ids: Tensor::from_vec(flat, (rows.len(), t), device)?,
            key_mask: vec![vec![1; t]; rows.len()],
            embeds: Vec::new(),
        })
    }

    /// Left-pads `rows` with `pad_id` to one length; returns the input and each row's padding.
    pub fn left_padded(
        rows: &[Vec<u32>],
        pad_id: u32,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(rows.len() * t);
        let mut key_mask = Vec::with_capacity(rows.len());
        for r in rows {
            let pad = t - r.len();
            flat.extend(std::iter::repeat_n(pad_id, pad));
            flat.extend_from_slice(r);
            let mut m = vec![0u8; pad];
            m.extend(std::iter::repeat_n(1u8, r.len()));
            key_mask.push(m);
        }
        Ok(Self {
            input_ids: Tensor::from_vec(flat, (rows.len(), t), device)?,
            key_mask,
            embeds: Vec::new(),
        })
    }
}

/// Replaces positions of the token embeddings `x` (B, T, H) by `spans` (see
/// [`DecoderInput::embeds`]). Differentiable: built from narrows and concatenations, so the
/// gradient reaches both the embedding table and the spliced embeddings. Errors name the span
/// (its index in `spans`) and what was expected.
pub fn splice_embeds(x: &Tensor, spans: &[EmbedSpan]) -> candle_core::Result<Tensor> {
    if spans.is_empty() {
        return Ok(x.clone());
    }
    let (b, t, h) = x.dims3()?;
    let mut by_row: Vec<Vec<(usize, &EmbedSpan)>> = vec![Vec::new(); b];
    for (i, s) in spans.iter().enumerate() {
        if s.row >= b {
            candle_core::bail!("embedding span {i}: row {} of a batch of {b} rows", s.row);
        }
        let dims = s.embeds.dims();
        let n = match dims {
            [n, hh] if *hh == h => *n,
            _ => candle_core::bail!(
                "embedding span {i}: expected (n, {h}) embeddings, got shape {dims:?}"
            ),
        };
        if s.start + n > t {
            candle_core::bail!(
                "embedding span {i}: positions {}..{} run past the input's {t} positions",
                s.start,
                s.start + n
            );
        }
        by_row[s.row].push((n, s));
    }
    let mut rows = Vec::with_capacity(b);
    for (r, mut list) in by_row.into_iter().enumerate() {
        let xr = x.get(r)?; // (T, H)
        if list.is_empty() {
            rows.push(xr);
            continue;
        }
        list.sort_by_key(|(_, s)| s.start);
        let mut pieces = Vec::with_capacity(2 * list.len() + 1);
        let mut at = 0;
        for (n, s) in list {
            if s.start < at {
                candle_core::bail!(
                    "embedding spans of row {r} overlap at position {} (the previous one ends at {at})",
                    s.start
                );
            }
            if s.start > at {
                pieces.push(xr.narrow(0, at, s.start - at)?);
            }
            if n > 0 {
                pieces.push(s.embeds.to_device(x.device())?.to_dtype(x.dtype())?);
            }
            at = s.start + n;
        }
        if at < t {
            pieces.push(xr.narrow(0, at, t - at)?);
        }
        rows.push(Tensor::cat(&pieces, 0)?);
    }
    Tensor::stack(&rows, 0) // (B, T, H)
}

/// A causal language model: hidden states in, next-token logits out.
pub trait CausalLm {
    /// Hidden states (B, T, H) for `input`, appending to `cache` when given.
    fn forward_hidden(
        &self,
        input: &DecoderInput,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> candle_core::Result<Tensor>;
    /// Logits (.., V) for hidden states (.., H).
    fn lm_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor>;
    /// Logits of the last position of each row: (B, V).
    fn last_logits(
        &self,
        input: &DecoderInput,
        cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let h = self.forward_hidden(input, cache, false)?; // (B, T, H)
        let t = h.dim(1)?;
        self.lm_logits(&h.narrow(1, t - 1, 1)?.squeeze(1)?) // (B, V)
    }
    fn new_cache(&self) -> KvCache;
    /// Every linear layer under its checkpoint name (`model.layers.0.self_attn.q_proj`, the
    /// head as `lm_head`, tied or not), so callers can tell how each holds its weight.
    fn linear_layers(&self) -> Vec<(String, &Linear)>;
    /// The context window in tokens.
    fn max_context(&self) -> usize;
    fn vocab_size(&self) -> usize;
    fn device(&self) -> &Device;
}
