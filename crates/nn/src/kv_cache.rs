//! The per-layer cache of attention keys and values, with the row operations that generation
//! strategies need: drop, reorder and fork rows (beam search), join rows of different past
//! lengths into one batch (continuous batching), and drop leading positions no row uses.
//!
//! Every layer holds keys and values (B, n_kv, S, hd): one batch row per sequence, `S` cached
//! positions shared by all rows. Rows of different lengths are left-padded with zero keys and
//! values; the caller's key mask marks those positions 0, so attention never sees them.

use candle_core::{Result, Tensor};

/// Per-layer cache of keys and values, each (B, n_kv, S, hd).
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
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
        self.layers
            .iter()
            .flatten()
            .next()
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Number of batch rows held (0 for an empty cache).
    pub fn batch_size(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .and_then(|(k, _)| k.dim(0).ok())
            .unwrap_or(0)
    }

    /// Appends this step's keys and values to layer `i` and returns the full ones.
    pub fn append(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if i >= self.layers.len() {
            self.layers.resize(i + 1, None);
        }
        let kv = match &self.layers[i] {
            None => (k.clone(), v.clone()),
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
        };
        self.layers[i] = Some(kv.clone());
        Ok(kv)
    }

    /// Keeps the batch rows listed in `rows` (u32, in that order): drops the rows not listed,
    /// reorders, and forks a row into several when its index repeats (beam search).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }

    /// [`KvCache::select_rows`] with the row indices as a slice; an index past the batch is an
    /// error that names it.
    pub fn select(&mut self, rows: &[usize]) -> Result<()> {
        let b = self.batch_size();
        if let Some(&r) = rows.iter().find(|&&r| r >= b) {
            candle_core::bail!("kv cache: row {r} selected from a batch of {b} rows");
        }
        let Some(device) = self.layers.iter().flatten().next().map(|(k, _)| k.device()) else {
            return Ok(());
        };
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let idx = Tensor::from_vec(idx, rows.len(), device)?;
        self.select_rows(&idx)
    }

    /// Adds `n` zero positions before the cached ones, in every layer. The caller marks them 0
    /// in its key mask.
    pub fn left_pad(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.pad_with_zeros(2, n, 0)?;
            *v = v.pad_with_zeros(2, n, 0)?;
        }
        Ok(())
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
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(2, n, s - n)?.contiguous()?;
            *v = v.narrow(2, n, s - n)?.contiguous()?;
        }
        Ok(())
    }

    /// Appends `other`'s rows after this cache's rows. The shorter of the two is left-padded
    /// with zero positions to the longer one's length first, so the caller left-pads its key
    /// masks by `max(s_self, s_other) - s` of each side. An empty side takes the other as is.
    pub fn append_rows(&mut self, other: &KvCache) -> Result<()> {
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() {
            *self = other.clone();
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
        let mut other = other.clone();
        self.left_pad(s - self.seq_len())?;
        other.left_pad(s - other.seq_len())?;
        for (i, (mine, theirs)) in self.layers.iter_mut().zip(other.layers).enumerate() {
            match (mine.as_mut(), theirs) {
                (Some((k, v)), Some((ok, ov))) => {
                    *k = Tensor::cat(&[&*k, &ok], 0)?;
                    *v = Tensor::cat(&[&*v, &ov], 0)?;
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
            .clone()
            .ok_or_else(|| candle_core::Error::msg("layer"))?;
        let rows = k.squeeze(1)?.to_vec3::<f32>()?;
        assert_eq!(rows[0], ka.squeeze(1)?.to_vec3::<f32>()?[0]);
        assert_eq!(
            rows[1],
            vec![vec![0.0, 0.0], vec![0.0, 0.0], vec![100.0, 101.0]]
        );
        assert_eq!(rows[2][2], vec![102.0, 103.0]);

        a.select(&[2, 2, 0])?;
        let (k, _) = a.layers[0]
            .clone()
            .ok_or_else(|| candle_core::Error::msg("layer"))?;
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
