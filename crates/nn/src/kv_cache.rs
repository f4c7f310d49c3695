//! The per-layer cache of attention keys and values, with the row operations that generation
//! strategies need: drop, reorder and fork rows (beam search), join rows of different past
//! lengths into one batch (continuous batching), and drop leading positions no row uses.
//!
//! Every layer holds keys and values (B, n_kv, S, hd): one batch row per sequence, `S` cached
//! positions shared by all rows. Rows of different lengths are left-padded with zero keys and
//! values; the caller's key mask marks those positions 0, so attention never sees them.

//!
//! Each layer's keys and values live in a buffer with room for more positions than are cached;
//! a step writes its keys in place after the cached ones (no copy of the cache per token), and
//! the buffer doubles when full. The attention reads a view of the cached positions.

use candle_core::{Result, Tensor};

/// Positions a fresh buffer holds beyond its first keys.
const HEADROOM: usize = 64;

/// One layer's keys and values: buffers (B, n_kv, capacity, hd), the first `len` positions
/// cached.
#[derive(Debug)]
struct Layer {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl Layer {
    /// A buffer holding `k` and `v` (B, n_kv, S, hd), with room for `extra` more positions.
    fn holding(k: &Tensor, v: &Tensor, extra: usize) -> Result<Self> {
        let s = k.dim(2)?;
        let grow = |t: &Tensor| -> Result<Tensor> {
            let (b, h, _, d) = t.dims4()?;
            let buf = Tensor::zeros((b, h, s + extra, d), t.dtype(), t.device())?;
            buf.slice_set(&t.contiguous()?, 2, 0)?;
            Ok(buf)
        };
        Ok(Self {
            k: grow(k)?,
            v: grow(v)?,
            len: s,
        })
    }

    fn capacity(&self) -> usize {
        self.k.dim(2).unwrap_or(0)
    }

    /// The cached positions, as views of the buffers.
    fn view(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.narrow(2, 0, self.len)?,
            self.v.narrow(2, 0, self.len)?,
        ))
    }

    /// Writes `k` and `v` (B, n_kv, T, hd) after the cached positions, growing the buffers
    /// when they are full.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let t = k.dim(2)?;
        if self.len + t > self.capacity() {
            let (pk, pv) = self.view()?;
            let extra = (self.len + t).max(HEADROOM);
            *self = Self::holding(&pk, &pv, extra)?;
        }
        self.k.slice_set(&k.contiguous()?, 2, self.len)?;
        self.v.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += t;
        Ok(())
    }
}

impl Layer {
    /// A copy with buffers of its own: in-place writes to one never show in the other.
    fn try_clone(&self) -> Result<Self> {
        let (k, v) = self.view()?;
        Self::holding(&k, &v, self.capacity() - self.len)
    }
}

/// Per-layer cache of keys and values, each (B, n_kv, S, hd). Not `Clone`: a copy needs buffers
/// of its own ([`KvCache::try_clone`]), since steps write into them in place.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<Layer>>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: (0..n_layers).map(|_| None).collect(),
        }
    }

    /// A copy with buffers of its own.
    pub fn try_clone(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| l.as_ref().map(Layer::try_clone).transpose())
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// Number of layers the cache was made for.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// True when no layer holds keys yet (a fresh cache, before the first forward).
    pub fn is_empty(&self) -> bool {
        self.layers.iter().all(Option::is_none)
    }

    /// Number of cached positions.
    pub fn seq_len(&self) -> usize {
        self.layers.iter().flatten().next().map_or(0, |l| l.len)
    }

    /// Number of batch rows held (0 for an empty cache).
    pub fn batch_size(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .and_then(|l| l.k.dim(0).ok())
            .unwrap_or(0)
    }

    /// Appends this step's keys and values to layer `i` and returns the full ones (views of
    /// the layer's buffers, valid until the next change to the cache).
    pub fn append(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if i >= self.layers.len() {
            self.layers.resize_with(i + 1, || None);
        }
        match &mut self.layers[i] {
            Some(layer) => layer.append(k, v)?,
            slot @ None => *slot = Some(Layer::holding(k, v, HEADROOM)?),
        }
        match &self.layers[i] {
            Some(layer) => layer.view(),
            None => candle_core::bail!("kv cache: layer {i} was not filled"),
        }
    }

    /// Applies `f` to every filled layer's cached keys and values, and keeps the results
    /// (with fresh headroom).
    fn rebuild(&mut self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
        for layer in self.layers.iter_mut().flatten() {
            let (k, v) = layer.view()?;
            *layer = Layer::holding(&f(&k)?, &f(&v)?, HEADROOM)?;
        }
        Ok(())
    }

    /// Keeps the batch rows listed in `rows` (u32, in that order): drops the rows not listed,
    /// reorders, and forks a row into several when its index repeats (beam search).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        self.rebuild(|t| t.contiguous()?.index_select(rows, 0))
    }

    /// [`KvCache::select_rows`] with the row indices as a slice; an index past the batch is an
    /// error that names it.
    pub fn select(&mut self, rows: &[usize]) -> Result<()> {
        let b = self.batch_size();
        if let Some(&r) = rows.iter().find(|&&r| r >= b) {
            candle_core::bail!("kv cache: row {r} selected from a batch of {b} rows");
        }
        let Some(device) = self
            .layers
            .iter()
            .flatten()
            .next()
            .map(|l| l.k.device().clone())
        else {
            return Ok(());
        };
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), &device)?;
        self.select_rows(&idx)
    }

    /// Adds `n` zero positions before the cached ones, in every layer. The caller marks them 0
    /// in its key mask.
    pub fn left_pad(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.rebuild(|t| t.pad_with_zeros(2, n, 0))
    }

    /// Drops the first `n` cached positions of every layer (positions that every row has as
    /// padding, once the rows that needed them left the batch).
    pub fn drop_front(&mut self, n: usize) -> Result<()> {
        let s = self.seq_len();
        if n > s {
            candle_core::bail!("kv cache: cannot drop {n} positions of {s}");
        }
        if n == 0 {
            return Ok(());
        }
        self.rebuild(|t| t.narrow(2, n, s - n))
    }

    /// Appends `other`'s rows after this cache's rows. The shorter of the two is left-padded
    /// with zero positions to the longer one's length first, so the caller left-pads its key
    /// masks by `max(s_self, s_other) - s` of each side. An empty side takes the other as is.
    pub fn append_rows(&mut self, other: &KvCache) -> Result<()> {
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() {
            *self = other.try_clone()?;
            return Ok(());
        }
        if self.layers.len() != other.layers.len() {
            candle_core::bail!(
                "kv cache: cannot join a cache of {} layers to one of {}",
                other.layers.len(),
                self.layers.len()
            );
        }
        let s = self.seq_len().max(other.seq_len());
        let mut other = other.try_clone()?;
        self.left_pad(s - self.seq_len())?;
        other.left_pad(s - other.seq_len())?;
        for (i, (mine, theirs)) in self.layers.iter_mut().zip(other.layers).enumerate() {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => {
                    let ((mk, mv), (tk, tv)) = (m.view()?, t.view()?);
                    *m = Layer::holding(
                        &Tensor::cat(&[&mk, &tk], 0)?,
                        &Tensor::cat(&[&mv, &tv], 0)?,
                        HEADROOM,
                    )?;
                }
                (None, None) => {}
                _ => candle_core::bail!("kv cache: layer {i} is filled on one side only"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn layer(b: usize, s: usize, base: f32) -> Result<Tensor> {
        let data: Vec<f32> = (0..b * s * 2).map(|i| base + i as f32).collect();
        Tensor::from_vec(data, (b, 1, s, 2), &Device::Cpu)
    }

    #[test]
    fn append_rows_left_pads_the_shorter_side_and_select_forks() -> Result<()> {
        let mut a = KvCache::new(1);
        let ka = layer(1, 3, 1.0)?;
        a.append(0, &ka, &ka)?;
        let mut b = KvCache::new(1);
        let kb = layer(2, 1, 100.0)?;
        b.append(0, &kb, &kb)?;
        a.append_rows(&b)?;
        assert_eq!((a.batch_size(), a.seq_len()), (3, 3));
        let (k, _) = a.layers[0]
            .as_ref()
            .ok_or_else(|| candle_core::Error::msg("layer"))?
            .view()?;
        let rows = k.squeeze(1)?.to_vec3::<f32>()?;
        assert_eq!(rows[0], ka.squeeze(1)?.to_vec3::<f32>()?[0]);
        assert_eq!(
            rows[1],
            vec![vec![0.0, 0.0], vec![0.0, 0.0], vec![100.0, 101.0]]
        );
        assert_eq!(rows[2][2], vec![102.0, 103.0]);

        a.select(&[2, 2, 0])?;
        let (k, _) = a.layers[0]
            .as_ref()
            .ok_or_else(|| candle_core::Error::msg("layer"))?
            .view()?;
        let rows = k.squeeze(1)?.to_vec3::<f32>()?;
        assert_eq!(rows[0], rows[1]);
        assert_eq!(rows[2][0], vec![1.0, 2.0]);
        assert!(a.select(&[3]).is_err());

        a.drop_front(2)?;
        assert_eq!(a.seq_len(), 1);
        assert!(a.drop_front(2).is_err());
        Ok(())
    }

    #[test]
    fn joining_an_empty_cache_takes_the_other_side() -> Result<()> {
        let mut a = KvCache::new(2);
        let mut b = KvCache::new(2);
        let k = layer(1, 2, 0.0)?;
        b.append(0, &k, &k)?;
        b.append(1, &k, &k)?;
        a.append_rows(&b)?;
        assert_eq!((a.batch_size(), a.seq_len()), (1, 2));
        a.append_rows(&KvCache::new(2))?;
        assert_eq!(a.batch_size(), 1);
        assert!(
            a.append_rows(&KvCache::new(3)).is_ok(),
            "an empty side is always accepted"
        );
        let mut c = KvCache::new(3);
        c.append(0, &k, &k)?;
        assert!(a.append_rows(&c).is_err(), "layer counts differ");
        Ok(())
    }
}
