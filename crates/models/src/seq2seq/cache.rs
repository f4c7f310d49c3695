//! The decoder state every encoder-decoder keeps while generating: the self-attention cache
//! grown one position per step, each layer's cross-attention keys and values (computed once
//! per source) and the source's key mask.

use candle_core::{Result, Tensor};
use tasklm_nn::KvCache;

pub struct Seq2SeqCache {
    /// `None` in teacher forcing: the keys and values of one full pass keep their gradients
    /// (the cache writes into buffers, which autograd does not follow).
    pub(crate) self_kv: Option<KvCache>,
    /// Per decoder layer: (B, heads, S, head_dim) keys and values of the encoder output.
    pub(crate) cross_kv: Vec<(Tensor, Tensor)>,
    /// (B, 1, 1, S) additive mask over the source positions.
    pub(crate) source_mask: Tensor,
}

impl Seq2SeqCache {
    pub(crate) fn new(layers: usize, cross_kv: Vec<(Tensor, Tensor)>, source_mask: Tensor) -> Self {
        Self {
            self_kv: Some(KvCache::new(layers)),
            cross_kv,
            source_mask,
        }
    }

    /// Teacher forcing: the full decoder input in one pass, no self-attention cache.
    pub fn without_self_cache(mut self) -> Self {
        self.self_kv = None;
        self
    }

    /// Decoder positions held.
    pub fn len(&self) -> usize {
        self.self_kv.as_ref().map_or(0, KvCache::seq_len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rows(&self) -> Result<usize> {
        self.source_mask.dim(0)
    }

    /// Appends layer `i`'s new self-attention keys and values (when caching) and returns all of
    /// them.
    pub(crate) fn self_keys_values(
        &mut self,
        i: usize,
        k: Tensor,
        v: Tensor,
    ) -> Result<(Tensor, Tensor)> {
        match self.self_kv.as_mut() {
            Some(kv) => kv.append(i, &k, &v),
            None => Ok((k, v)),
        }
    }

    /// Layer `i`'s cross-attention keys and values and the source mask broadcast to `t`
    /// queries: (B, 1, t, S).
    pub(crate) fn cross(&self, i: usize, t: usize) -> Result<(&Tensor, &Tensor, Tensor)> {
        let Some((k, v)) = self.cross_kv.get(i) else {
            candle_core::bail!(
                "decoder layer {i}: the cache holds cross-attention for {} layers",
                self.cross_kv.len()
            );
        };
        let (b, _, _, s) = self.source_mask.dims4()?;
        let mask = self.source_mask.broadcast_as((b, 1, t, s))?.contiguous()?;
        Ok((k, v, mask))
    }

    /// Keeps `rows` (indices into the batch, repeats fork a row).
    pub fn select(&mut self, rows: &[usize]) -> Result<()> {
        let idx = Tensor::from_vec(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            rows.len(),
            self.source_mask.device(),
        )?;
        if let Some(kv) = self.self_kv.as_mut().filter(|kv| !kv.is_empty()) {
            kv.select(rows)?;
        }
        for (k, v) in &mut self.cross_kv {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        self.source_mask = self.source_mask.index_select(&idx, 0)?;
        Ok(())
    }
}
