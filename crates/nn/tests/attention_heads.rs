//! The fused attention over heads side by side (`ops::attention_heads`) against the same
//! attention from separate ops on split heads: output and the gradients of q, k and v within
//! 1e-5, with one kv head per query head and with grouped kv heads, a padding mask (one query row masked everywhere), keys and queries of different
//! lengths, and dropout drawn from the same seed over (B, heads, T, S), with blocks that
//! straddle the dropout generator's 4096-value chunks.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use tasklm_nn::lora_linear::SeededDropout;
use tasklm_nn::ops;

fn rand(shape: &[usize], seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// (B, 1, T, S): row 1's last two keys are padding, and its first query sees nothing.
fn padding_mask(b: usize, t: usize, s: usize) -> Result<Tensor> {
    let mut m = vec![0f32; b * t * s];
    for i in 0..t {
        for j in 0..s {
            if b > 1 && (j + 2 >= s || i == 0) {
                m[(t + i) * s + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Tensor::from_vec(m, (b, 1, t, s), &Device::Cpu)?)
}

fn split(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (b, t, h) = x.dims3()?;
    x.reshape((b, t, heads, h / heads))?
        .transpose(1, 2)?
        .contiguous()
}

fn against_composed(
    dims: (usize, usize, usize, usize, usize, usize),
    dropout: Option<SeededDropout>,
) -> Result<()> {
    let (b, nh, nkv, hd, t, s) = dims;
    let (h, hkv, rep) = (nh * hd, nkv * hd, nh / nkv);
    let scale = 1.0 / (hd as f64).sqrt();
    let mask = padding_mask(b, t, s)?;
    let vars = || -> Result<[Var; 3]> {
        Ok([
            Var::from_tensor(&rand(&[b, t, h], 1)?)?,
            Var::from_tensor(&rand(&[b, s, hkv], 2)?)?,
            Var::from_tensor(&rand(&[b, s, hkv], 3)?)?,
        ])
    };
    let g = rand(&[b, t, h], 4)?;
    let [q, k, v] = vars()?;
    let got = ops::attention_heads(
        q.as_tensor(),
        k.as_tensor(),
        v.as_tensor(),
        nh,
        nkv,
        Some(&mask),
        scale,
        dropout,
    )?;
    let [q2, k2, v2] = vars()?;
    // Query heads h * rep..(h + 1) * rep over kv head h: (B, nh, T, hd) is (B, nkv, rep T, hd).
    let (qs, ks, vs) = (
        split(q2.as_tensor(), nh)?.reshape((b, nkv, rep * t, hd))?,
        split(k2.as_tensor(), nkv)?,
        split(v2.as_tensor(), nkv)?,
    );
    let scores = qs.matmul(&ks.t()?)?.reshape((b, nh, t, s))?;
    let probs = ops::scaled_masked_softmax(&scores, Some(&mask), scale)?;
    let probs = match dropout {
        Some(d) => {
            let keep =
                ops::dropout_mask_seeded(probs.shape(), d.p, DType::F32, &Device::Cpu, d.seed)?;
            (probs * keep)?
        }
        None => probs,
    };
    let want = probs
        .reshape((b, nkv, rep * t, s))?
        .matmul(&vs)?
        .reshape((b, nh, t, hd))?
        .transpose(1, 2)?
        .reshape((b, t, h))?;
    let gap = |a: &Tensor, b: &Tensor| -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    };
    let d = gap(&got, &want)?;
    assert!(
        d < 1e-5,
        "forward differs by {d} (dims {dims:?}, dropout {dropout:?})"
    );
    // Row 1's first query sees no key: its output is zeros.
    let masked_row = got.get(1)?.get(0)?.abs()?.sum_all()?.to_scalar::<f32>()?;
    if b > 1 {
        assert_eq!(masked_row, 0.0, "a query that sees nothing");
    }
    let gs = (got * &g)?.sum_all()?.backward()?;
    let ws = (want * &g)?.sum_all()?.backward()?;
    for (name, a, r) in [("q", &q, &q2), ("k", &k, &k2), ("v", &v, &v2)] {
        let ga = gs
            .get(a.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no d{name}"))?;
        let gb = ws
            .get(r.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no reference d{name}"))?;
        let d = gap(ga, gb)?;
        assert!(
            d < 1e-5,
            "d{name} differs by {d} (dims {dims:?}, dropout {dropout:?})"
        );
        assert!(!ga.track_op(), "d{name} holds a graph");
    }
    Ok(())
}

#[test]
fn fused_heads_match_the_composed_attention_and_its_gradients() -> Result<()> {
    // (B, heads, kv heads, hd, T, S): one kv head per query head, then three query heads over
    // each of two kv heads (grouped-query attention, as SmolLM2's).
    for dims in [(2, 3, 3, 4, 5, 6), (2, 3, 3, 8, 40, 50), (2, 6, 2, 4, 7, 7)] {
        against_composed(dims, None)?;
        against_composed(dims, Some(SeededDropout { p: 0.3, seed: 11 }))?;
    }
    Ok(())
}

#[test]
fn fused_heads_refuse_shapes_that_do_not_fit() -> Result<()> {
    let q = rand(&[2, 5, 12], 1)?;
    let k = rand(&[2, 6, 12], 2)?;
    let err = ops::attention_heads(&q, &k, &k, 5, 5, None, 1.0, None).unwrap_err();
    assert!(
        err.to_string().contains("do not split into 5 heads"),
        "{err}"
    );
    let short = rand(&[2, 6, 8], 3)?;
    let err = ops::attention_heads(&q, &short, &short, 3, 3, None, 1.0, None).unwrap_err();
    assert!(err.to_string().contains("must be (B, T, 3 x hd)"), "{err}");
    let mask = padding_mask(2, 5, 5)?;
    let err = ops::attention_heads(&q, &k, &k, 3, 3, Some(&mask), 1.0, None).unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
    Ok(())
}
