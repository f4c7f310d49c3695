//! Attention masks and the position ids that go with them, built from per-row key masks
//! (`key_mask[b][j]`: 0 for padding, else the segment id of key `j`).

use candle_core::{Device, Result, Tensor};

/// Additive attention mask (B, 1, T, S) for `t` new queries over `past + t` keys: 0 where a
/// query may attend, `-inf` elsewhere. Keys are visible when causal order allows it
/// (or always, when `causal` is false) and `key_mask[b][j] != 0`.
///
/// A non-zero `key_mask` value is a segment id: packed rows number their samples 1, 2, ...
/// and a query sees only keys of its own segment (a block-diagonal mask), so packed samples do
/// not attend to each other. Unpacked rows use 1 throughout.
///
/// [`SHARED_SEGMENT`] marks a shared prefix: every query of the row sees its keys (causal
/// order allowing), while its own queries see only the prefix. Several segments after one
/// prefix are then each the prefix followed by that segment alone, as if each ran on its own
/// after it (a VLM's image followed by independent questions about it).
pub fn attention_mask(
    key_mask: &[Vec<u8>],
    t: usize,
    causal: bool,
    device: &Device,
) -> Result<Tensor> {
    let b = key_mask.len();
    let s = key_mask.first().map(|r| r.len()).unwrap_or(0);
    if s < t {
        candle_core::bail!("attention mask: {s} keys for {t} queries");
    }
    let past = s - t;
    let mut data = vec![0f32; b * t * s];
    for (bi, row) in key_mask.iter().enumerate() {
        if row.len() != s {
            candle_core::bail!(
                "attention mask: row {bi} has {} keys, expected {s}",
                row.len()
            );
        }
        for i in 0..t {
            let seg = row[past + i];
            let out = &mut data[(bi * t + i) * s..(bi * t + i + 1) * s];
            for (j, o) in out.iter_mut().enumerate() {
                let same_segment = row[j] == seg || seg == 0 || row[j] == SHARED_SEGMENT;
                let visible = row[j] != 0 && same_segment && (!causal || j <= past + i);
                if !visible {
                    *o = f32::NEG_INFINITY;
                }
            }
        }
    }
    Tensor::from_vec(data, (b, 1, t, s), device)
}

/// The segment id of a prefix that every other segment of its row sees (see
/// [`attention_mask`]); packed samples number 1 up to 254.
pub const SHARED_SEGMENT: u8 = u8::MAX;

/// Position ids for the last `t` of the keys in `key_mask`: the count of real tokens of the
/// same segment before each one, so a left-padded row gets the same positions as the row alone
/// and each packed sample starts again at 0. A segment after a [`SHARED_SEGMENT`] prefix
/// starts again after the prefix instead, where it would stand if it followed the prefix alone.
pub fn positions_from_mask(key_mask: &[Vec<u8>], t: usize) -> Vec<Vec<u32>> {
    key_mask
        .iter()
        .map(|row| {
            // A real token's position is the number of real tokens before it; padding gets 0.
            let mut seen = 0u32;
            let mut shared = 0u32;
            let mut segment = 0u8;
            let pos: Vec<u32> = row
                .iter()
                .map(|&m| {
                    if m == 0 {
                        return 0;
                    }
                    if m == SHARED_SEGMENT {
                        shared += 1;
                    }
                    if m != segment {
                        segment = m;
                        seen = if m == SHARED_SEGMENT {
                            shared - 1
                        } else {
                            shared
                        };
                    }
                    seen += 1;
                    seen - 1
                })
                .collect();
            pos[row.len().saturating_sub(t)..].to_vec()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn causal_mask_hides_padding_and_the_future() -> Result<()> {
        // One left-padded row: [pad, a, b].
        let m = attention_mask(&[vec![0, 1, 1]], 3, true, &Device::Cpu)?;
        assert_eq!(m.dims(), &[1, 1, 3, 3]);
        let m = m.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(
            m,
            vec![
                vec![NEG, NEG, NEG],
                vec![NEG, 0.0, NEG],
                vec![NEG, 0.0, 0.0]
            ]
        );
        Ok(())
    }

    #[test]
    fn bidirectional_mask_over_a_cache_and_segments() -> Result<()> {
        // Two packed samples (segments 1 and 2), not causal: each sees only its own segment.
        let m = attention_mask(&[vec![1, 1, 2]], 3, false, &Device::Cpu)?;
        let m = m.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(m[0], vec![0.0, 0.0, NEG]);
        assert_eq!(m[2], vec![NEG, NEG, 0.0]);
        // One new query over two cached keys: the last row of the causal mask.
        let m = attention_mask(&[vec![1, 1, 1]], 1, true, &Device::Cpu)?;
        assert_eq!(m.dims(), &[1, 1, 1, 3]);
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![0.0, 0.0, 0.0]);
        Ok(())
    }

    #[test]
    fn mask_rows_of_unequal_length_are_refused() {
        let err = attention_mask(&[vec![1, 1], vec![1]], 1, true, &Device::Cpu);
        assert!(err
            .err()
            .is_some_and(|e| e.to_string().contains("row 1 has 1 keys, expected 2")));
    }

    #[test]
    fn positions_skip_padding_and_restart_per_segment() {
        let p = positions_from_mask(&[vec![0, 0, 1, 1, 1], vec![1, 1, 2, 2, 2]], 5);
        assert_eq!(p, vec![vec![0, 0, 0, 1, 2], vec![0, 1, 0, 1, 2]]);
        // Only the last `t` positions: one decoding step after three real tokens.
        assert_eq!(positions_from_mask(&[vec![0, 1, 1, 1]], 1), vec![vec![2]]);
    }

    #[test]
    fn segments_after_a_shared_prefix_see_it_and_continue_its_positions() -> Result<()> {
        // Padding, a prefix of two, then segments 1 (two tokens) and 2 (one token).
        const S: u8 = SHARED_SEGMENT;
        let row = vec![0, S, S, 1, 1, 2];
        let m = attention_mask(std::slice::from_ref(&row), 6, true, &Device::Cpu)?;
        let m = m.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(m[1], vec![NEG, 0.0, NEG, NEG, NEG, NEG]);
        assert_eq!(m[2], vec![NEG, 0.0, 0.0, NEG, NEG, NEG]);
        assert_eq!(m[4], vec![NEG, 0.0, 0.0, 0.0, 0.0, NEG]);
        assert_eq!(m[5], vec![NEG, 0.0, 0.0, NEG, NEG, 0.0]);
        let p = positions_from_mask(&[row], 6);
        assert_eq!(p, vec![vec![0, 0, 1, 2, 3, 2]]);
        Ok(())
    }
}
