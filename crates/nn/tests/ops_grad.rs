//! Every fused op's backward pass against central finite differences, in f64.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use tasklm_nn::lora_linear::SeededDropout;
use tasklm_nn::ops;

const EPS: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn randn(shape: &[usize], seed: u64) -> Result<Tensor> {
    // Deterministic pseudo-random values without a global RNG.
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<f64> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// Checks d(sum(f(inputs) * w))/d(inputs[which]) against central differences.
fn check<F>(name: &str, inputs: &[Tensor], which: usize, f: F) -> Result<()>
where
    F: Fn(&[Tensor]) -> candle_core::Result<Tensor>,
{
    check_tol(name, inputs, which, f, TOL)
}

/// [`check`] with its own tolerance.
fn check_tol<F>(name: &str, inputs: &[Tensor], which: usize, f: F, tol: f64) -> Result<()>
where
    F: Fn(&[Tensor]) -> candle_core::Result<Tensor>,
{
    let out_shape = f(inputs)?.dims().to_vec();
    let w = randn(&out_shape, 99)?;
    let loss = |xs: &[Tensor]| -> Result<f64> { Ok((f(xs)? * &w)?.sum_all()?.to_scalar::<f64>()?) };

    let var = Var::from_tensor(&inputs[which])?;
    let mut with_var = inputs.to_vec();
    with_var[which] = var.as_tensor().clone();
    let l = (f(&with_var)? * &w)?.sum_all()?;
    let grads = l.backward()?;
    let analytic = grads
        .get(var.as_tensor())
        .ok_or_else(|| anyhow::anyhow!("{name}: no gradient for input {which}"))?
        .flatten_all()?
        .to_vec1::<f64>()?;

    let base = inputs[which].flatten_all()?.to_vec1::<f64>()?;
    let shape = inputs[which].dims().to_vec();
    let mut max_err = 0f64;
    for i in 0..base.len() {
        let mut plus = base.clone();
        plus[i] += EPS;
        let mut minus = base.clone();
        minus[i] -= EPS;
        let mut xp = inputs.to_vec();
        xp[which] = Tensor::from_vec(plus, shape.as_slice(), &Device::Cpu)?;
        let mut xm = inputs.to_vec();
        xm[which] = Tensor::from_vec(minus, shape.as_slice(), &Device::Cpu)?;
        let numeric = (loss(&xp)? - loss(&xm)?) / (2.0 * EPS);
        max_err = max_err.max((numeric - analytic[i]).abs());
    }
    assert!(
        max_err < tol,
        "{name}: input {which}: max |analytic - numeric| = {max_err:e}"
    );
    Ok(())
}

#[test]
fn softmax_grad_matches_finite_differences() -> Result<()> {
    let x = (randn(&[2, 3, 7], 1)? * 3.0)?;
    check("softmax", &[x], 0, |xs| ops::softmax_last_dim(&xs[0]))
}

#[test]
fn softmax_of_fully_masked_row_is_zero_not_nan() -> Result<()> {
    let x = Tensor::new(
        &[[f32::NEG_INFINITY, f32::NEG_INFINITY], [0.0, 0.0]],
        &Device::Cpu,
    )?;
    let y = ops::softmax_last_dim(&x)?.to_vec2::<f32>()?;
    assert_eq!(y, vec![vec![0.0, 0.0], vec![0.5, 0.5]]);
    Ok(())
}

#[test]
fn scaled_masked_softmax_matches_the_unfused_ops_and_their_gradient() -> Result<()> {
    // Scores (B=2, H=3, T=4, S=5) and a (B, 1, T, S) mask with -inf holes and one fully
    // masked query row.
    let x = (randn(&[2, 3, 4, 5], 7)? * 3.0)?;
    let mut m = vec![0f64; 2 * 4 * 5];
    for (i, v) in m.iter_mut().enumerate() {
        if i % 7 == 3 || (20..25).contains(&i) {
            *v = f64::NEG_INFINITY;
        }
    }
    let mask = Tensor::from_vec(m, (2, 1, 4, 5), &Device::Cpu)?;
    let fused = ops::scaled_masked_softmax(&x, Some(&mask), 0.3)?;
    let unfused = ops::softmax_last_dim(&(x.clone() * 0.3)?.broadcast_add(&mask)?)?;
    let diff = (fused - unfused)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(diff < 1e-12, "fused vs unfused: {diff:e}");
    check("scaled_masked_softmax", &[x.clone(), mask], 0, |xs| {
        ops::scaled_masked_softmax(&xs[0], Some(&xs[1]), 0.3)
    })?;
    check("scaled_softmax", &[x], 0, |xs| {
        ops::scaled_masked_softmax(&xs[0], None, 0.3)
    })
}

#[test]
fn scaled_masked_softmax_rejects_a_mask_of_another_shape() -> Result<()> {
    let x = randn(&[2, 3, 4, 5], 7)?;
    let mask = Tensor::zeros((1, 1, 4, 5), DType::F64, &Device::Cpu)?;
    let err = ops::scaled_masked_softmax(&x, Some(&mask), 1.0).unwrap_err();
    assert!(err.to_string().contains("expected [2, 1, 4, 5]"), "{err}");
    Ok(())
}

#[test]
fn rms_norm_grads_match_finite_differences() -> Result<()> {
    let x = randn(&[2, 3, 8], 2)?;
    let w = (randn(&[8], 3)? + 1.0)?;
    let f = |xs: &[Tensor]| ops::rms_norm(&xs[0], &xs[1], 1e-5);
    check("rms_norm", &[x.clone(), w.clone()], 0, f)?;
    check("rms_norm", &[x, w], 1, f)
}

#[test]
fn rope_grad_matches_finite_differences() -> Result<()> {
    let x = randn(&[2, 3, 2, 6], 4)?;
    let angles = (randn(&[2, 3, 3], 5)? * 3.0)?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    check("rope", &[x, cos, sin], 0, |xs| {
        ops::rope(&xs[0], &xs[1], &xs[2])
    })
}

#[test]
fn rope_matches_rotate_half_formula() -> Result<()> {
    // x = [1, 2, 3, 4] at angle (a, b): out = [1 cos a - 3 sin a, 2 cos b - 4 sin b,
    //                                          3 cos a + 1 sin a, 4 cos b + 2 sin b]
    let (a, b) = (0.3f64, -1.1f64);
    let x = Tensor::new(&[1f64, 2.0, 3.0, 4.0], &Device::Cpu)?.reshape((1, 1, 1, 4))?;
    let cos = Tensor::new(&[a.cos(), b.cos()], &Device::Cpu)?.reshape((1, 1, 2))?;
    let sin = Tensor::new(&[a.sin(), b.sin()], &Device::Cpu)?.reshape((1, 1, 2))?;
    let y = ops::rope(&x, &cos, &sin)?.flatten_all()?.to_vec1::<f64>()?;
    let want = [
        a.cos() - 3.0 * a.sin(),
        2.0 * b.cos() - 4.0 * b.sin(),
        3.0 * a.cos() + a.sin(),
        4.0 * b.cos() + 2.0 * b.sin(),
    ];
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{y:?} vs {want:?}");
    }
    Ok(())
}

#[test]
fn silu_grads_match_finite_differences() -> Result<()> {
    let g = (randn(&[3, 5], 6)? * 4.0)?;
    let u = randn(&[3, 5], 7)?;
    check("silu", std::slice::from_ref(&g), 0, |xs| ops::silu(&xs[0]))?;
    let f = |xs: &[Tensor]| ops::silu_mul(&xs[0], &xs[1]);
    check("silu_mul", &[g.clone(), u.clone()], 0, f)?;
    check("silu_mul", &[g, u], 1, f)
}

#[test]
fn cross_entropy_grad_matches_finite_differences_and_ignores_minus_100() -> Result<()> {
    let logits = (randn(&[4, 6], 8)? * 2.0)?;
    let labels = Tensor::new(&[2i64, -100, 5, 0], &Device::Cpu)?;
    let f = |xs: &[Tensor]| ops::per_token_cross_entropy(&xs[0], &labels);
    check("cross_entropy", std::slice::from_ref(&logits), 0, f)?;

    let per = ops::per_token_cross_entropy(&logits, &labels)?.to_vec1::<f64>()?;
    assert_eq!(per[1], 0.0, "ignored position must not be scored");
    // Row 0 by hand: logsumexp(row) - row[2].
    let row = logits.get(0)?.to_vec1::<f64>()?;
    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
    assert!((per[0] - (lse - row[2])).abs() < 1e-12);

    let (sum, n) =
        ops::masked_cross_entropy(&logits.reshape((2, 2, 6))?, &labels.reshape((2, 2))?)?;
    assert_eq!(n, 3);
    let want: f64 = per.iter().sum();
    assert!((sum.to_scalar::<f64>()? - want).abs() < 1e-12);
    Ok(())
}

#[test]
fn cross_entropy_rejects_out_of_range_label() -> Result<()> {
    let logits = Tensor::zeros((1, 3), DType::F32, &Device::Cpu)?;
    let labels = Tensor::new(&[7i64], &Device::Cpu)?;
    let err = ops::per_token_cross_entropy(&logits, &labels)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 7 outside 0..3"), "{err}");
    Ok(())
}

/// `linear_rows` (few rows) and `linear` (training) equal candle's matmul, forward and
/// backward, and their gradients are plain tensors: no graph node that would keep the output's
/// gradient alive until the optimizer step.
#[test]
fn matvec_and_linear_match_matmul_and_have_gradients_that_hold_no_graph() -> Result<()> {
    type Op = fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;
    let cases: [(&str, Op, usize); 2] = [
        ("linear_rows", ops::linear_rows, 3),
        ("linear", ops::linear, 40),
    ];
    for (name, op, rows) in cases {
        let x = randn(&[rows, 37], 11)?.to_dtype(DType::F32)?;
        let w = randn(&[70, 37], 12)?.to_dtype(DType::F32)?;
        let want = x.matmul(&w.t()?)?;
        let gap = |a: &Tensor, b: &Tensor| -> Result<f32> {
            Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
        };
        let d = gap(&op(&x, &w)?, &want)?;
        assert!(d < 1e-5, "{name} differs from matmul by {d}");
        let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
        // Through a product with a tracked tensor, as in a model (the gradient is not a leaf's).
        let g = Var::from_tensor(&randn(&[rows, 70], 13)?.to_dtype(DType::F32)?)?;
        let grads = (op(xv.as_tensor(), wv.as_tensor())? * g.as_tensor())?
            .sum_all()?
            .backward()?;
        let dx = grads
            .get(xv.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no dx"))?;
        let dw = grads
            .get(wv.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no dw"))?;
        let ex = gap(dx, &g.as_tensor().matmul(&w)?)?;
        let ew = gap(dw, &g.as_tensor().t()?.matmul(&x)?)?;
        assert!(ex < 1e-5 && ew < 1e-5, "{name} grads differ: {ex} {ew}");
        assert!(
            !dw.track_op() && !dx.track_op(),
            "{name}: a gradient holds a graph"
        );
    }
    Ok(())
}

/// The fused `x W^T + b` (the bias is where the gemm starts) matches matmul plus broadcast
/// add, and so do its three gradients, none of which holds a graph.
#[test]
fn linear_with_its_bias_in_the_gemm_matches_matmul_plus_bias() -> Result<()> {
    let gap = |a: &Tensor, b: &Tensor| -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    };
    let x = randn(&[40, 37], 21)?.to_dtype(DType::F32)?;
    let w = randn(&[70, 37], 22)?.to_dtype(DType::F32)?;
    let b = randn(&[70], 23)?.to_dtype(DType::F32)?;
    let want = x.matmul(&w.t()?)?.broadcast_add(&b)?;
    let d = gap(&ops::linear_bias(&x, &w, &b)?, &want)?;
    assert!(d < 1e-5, "linear_bias differs from matmul + bias by {d}");
    let (xv, wv, bv) = (
        Var::from_tensor(&x)?,
        Var::from_tensor(&w)?,
        Var::from_tensor(&b)?,
    );
    let g = Var::from_tensor(&randn(&[40, 70], 24)?.to_dtype(DType::F32)?)?;
    let grads = (ops::linear_bias(xv.as_tensor(), wv.as_tensor(), bv.as_tensor())?
        * g.as_tensor())?
    .sum_all()?
    .backward()?;
    let get = |v: &Var, what: &str| -> Result<Tensor> {
        grads
            .get(v.as_tensor())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no {what}"))
    };
    let (dx, dw, db) = (get(&xv, "dx")?, get(&wv, "dw")?, get(&bv, "db")?);
    let ex = gap(&dx, &g.as_tensor().matmul(&w)?)?;
    let ew = gap(&dw, &g.as_tensor().t()?.matmul(&x)?)?;
    let eb = gap(&db, &g.as_tensor().sum(0)?)?;
    assert!(
        ex < 1e-5 && ew < 1e-5 && eb < 1e-5,
        "grads differ: {ex} {ew} {eb}"
    );
    assert!(!dx.track_op() && !dw.track_op() && !db.track_op());
    let bad = ops::linear_bias(&x, &w, &b.narrow(0, 0, 69)?).err();
    assert!(bad.is_some_and(|e| e.to_string().contains("a bias of 69 values for 70 outputs")));
    Ok(())
}

#[test]
fn layer_norm_grads_match_finite_differences() -> Result<()> {
    let x = (randn(&[3, 5, 8], 11)? * 2.0)?;
    let w = (randn(&[8], 12)? + 1.0)?;
    let b = randn(&[8], 13)?;
    let inputs = [x, w, b];
    for which in 0..3 {
        check("layer_norm", &inputs, which, |xs| {
            ops::layer_norm(&xs[0], &xs[1], &xs[2], 1e-5)
        })?;
    }
    Ok(())
}

#[test]
fn layer_norm_matches_its_formula() -> Result<()> {
    let x = (randn(&[4, 6], 14)? * 3.0)?;
    let w = randn(&[6], 15)?;
    let b = randn(&[6], 16)?;
    let mean = x.mean_keepdim(1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    let want = centred
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .broadcast_mul(&w)?
        .broadcast_add(&b)?;
    let got = ops::layer_norm(&x, &w, &b, 1e-5)?;
    let d = (got - want)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(d < 1e-12, "layer_norm differs from its formula by {d}");
    Ok(())
}

#[test]
fn gelu_matches_exact_erf_form_and_its_gradient() -> Result<()> {
    let x = (randn(&[2, 50], 17)? * 4.0)?;
    // candle's gelu_erf evaluates erf with libm: the exact form to compare the fast erf with.
    let d = (ops::gelu_erf(&x)? - x.gelu_erf()?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
    assert!(d < 1e-6, "gelu differs from x*Phi(x) by {d}");
    // The derivative uses the exact normal density while the forward's erf carries an error
    // of up to 1.5e-7, so the finite differences agree to 1e-5 rather than 1e-6.
    check_tol("gelu", &[x], 0, |xs| ops::gelu_erf(&xs[0]), 1e-5)
}

#[test]
fn add_bias_grads_match_finite_differences() -> Result<()> {
    let y = randn(&[3, 4, 5], 18)?;
    let b = randn(&[5], 19)?;
    let inputs = [y, b];
    for which in 0..2 {
        check("add_bias", &inputs, which, |xs| {
            ops::add_bias(&xs[0], &xs[1])
        })?;
    }
    Ok(())
}

/// The training attention op (probabilities recomputed in the backward pass) against the same
/// attention from separate ops: 4 query heads over 2 kv heads, a causal mask with a padded
/// key, without and with dropout on the probabilities (the composed side multiplying by the
/// mask the op draws from the same seed); output and the gradients of q, k and v within 1e-5,
/// and the gradients hold no graph.
#[test]
fn attention_core_matches_the_composed_attention_and_its_gradients() -> Result<()> {
    attention_core_against_composed(None)?;
    attention_core_against_composed(Some(SeededDropout { p: 0.3, seed: 7 }))
}

fn attention_core_against_composed(dropout: Option<SeededDropout>) -> Result<()> {
    let (b, nh, nkv, t, hd) = (2, 4, 2, 5, 3);
    let rep = nh / nkv;
    let scale = 1.0 / (hd as f64).sqrt();
    let mut mask = vec![0f32; b * t * t];
    for bi in 0..b {
        for i in 0..t {
            for j in 0..t {
                if j > i || (bi == 1 && j == 0) {
                    mask[(bi * t + i) * t + j] = f32::NEG_INFINITY;
                }
            }
        }
    }
    let mask = Tensor::from_vec(mask, (b, 1, t, t), &Device::Cpu)?;
    let vars = || -> Result<[Var; 3]> {
        Ok([
            Var::from_tensor(&randn(&[b, nkv, rep * t, hd], 21)?.to_dtype(DType::F32)?)?,
            Var::from_tensor(&randn(&[b, nkv, t, hd], 22)?.to_dtype(DType::F32)?)?,
            Var::from_tensor(&randn(&[b, nkv, t, hd], 23)?.to_dtype(DType::F32)?)?,
        ])
    };
    let g = randn(&[b, nkv, rep * t, hd], 24)?.to_dtype(DType::F32)?;
    let [q, k, v] = vars()?;
    let got = ops::attention_core(
        q.as_tensor(),
        k.as_tensor(),
        v.as_tensor(),
        t,
        Some(&mask),
        scale,
        dropout,
    )?;
    let [q2, k2, v2] = vars()?;
    let scores = q2
        .as_tensor()
        .matmul(&k2.as_tensor().t()?)?
        .reshape((b, nh, t, t))?;
    let probs =
        ops::scaled_masked_softmax(&scores, Some(&mask), scale)?.reshape((b, nkv, rep * t, t))?;
    let probs = match dropout {
        Some(d) => {
            let keep =
                ops::dropout_mask_seeded(probs.shape(), d.p, DType::F32, &Device::Cpu, d.seed)?;
            let zeros = keep
                .eq(0f32)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?;
            assert!(zeros > 0.0, "the mask drops nothing");
            (probs * keep)?
        }
        None => probs,
    };
    let want = probs.matmul(v2.as_tensor())?;
    let gap = |a: &Tensor, b: &Tensor| -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    };
    assert!(gap(&got, &want)? < 1e-5, "forward differs");
    let gs = (got * &g)?.sum_all()?.backward()?;
    let ws = (want * &g)?.sum_all()?.backward()?;
    for (name, a, b) in [("q", &q, &q2), ("k", &k, &k2), ("v", &v, &v2)] {
        let ga = gs
            .get(a.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no d{name}"))?;
        let gb = ws
            .get(b.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("no reference d{name}"))?;
        let d = gap(ga, gb)?;
        assert!(d < 1e-5, "d{name} differs by {d} (dropout {dropout:?})");
        assert!(!ga.track_op(), "d{name} holds a graph");
    }
    Ok(())
}
