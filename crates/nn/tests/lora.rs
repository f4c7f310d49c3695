//! LoRA layers: a fresh adapter changes nothing, an adapted layer computes `x (W + s B A)^T + b`,
//! only A and B get gradients, and `linear_layer_names` sees every `Linear::load`.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use tasklm_nn::{linear_layer_names, Linear, LinearWeight, LoraSpec};

const SPEC: LoraSpec = LoraSpec {
    r: 4,
    alpha: 8.0,
    dropout: 0.0,
    rslora: false,
};

fn wave(rows: usize, cols: usize, seed: f64) -> Result<Tensor> {
    Tensor::arange(0f32, (rows * cols) as f32, &Device::Cpu)?
        .affine(seed, 0.3)?
        .sin()?
        .reshape((rows, cols))
}

fn max_gap(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// A (out 6, in 5) layer with a bias and the adapter tensors `extra` under `proj`.
fn layer(extra: Vec<(String, Tensor)>) -> Result<Linear> {
    let mut map = HashMap::from([
        ("proj.weight".to_string(), wave(6, 5, 0.7)?),
        ("proj.bias".to_string(), wave(1, 6, 0.2)?.reshape(6)?),
    ]);
    map.extend(extra);
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    Linear::load(5, 6, true, vb.pp("proj"), None)
}

#[test]
fn a_fresh_adapter_changes_nothing() -> Result<()> {
    let (a, b) = SPEC.fresh(6, 5, 7, &Device::Cpu)?;
    let adapted = layer(SPEC.layer_tensors("proj", a, b)?)?;
    assert!(matches!(adapted.kind(), LinearWeight::Adapted(_)));
    let plain = layer(vec![])?;
    let x = wave(3, 5, 1.3)?.reshape((1, 3, 5))?;
    let (y, y0) = (adapted.forward(&x)?, plain.forward(&x)?);
    assert_eq!(y.to_vec3::<f32>()?, y0.to_vec3::<f32>()?);
    Ok(())
}

#[test]
fn fresh_a_is_kaiming_uniform_and_b_is_zero() -> Result<()> {
    let spec = LoraSpec { r: 16, ..SPEC };
    let (a, b) = spec.fresh(32, 400, 1, &Device::Cpu)?;
    assert_eq!((a.dims(), b.dims()), (&[16, 400][..], &[32, 16][..]));
    let bound = 1.0 / 20.0; // 1 / sqrt(400)
    let v = a.flatten_all()?.to_vec1::<f32>()?;
    assert!(v.iter().all(|x| x.abs() <= bound), "A outside ±1/sqrt(in)");
    let var = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / v.len() as f64;
    // Uniform on ±bound has variance bound^2 / 3.
    let want = f64::from(bound).powi(2) / 3.0;
    assert!((var / want - 1.0).abs() < 0.05, "variance {var} vs {want}");
    assert_eq!(b.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
    // The draw is the seed's: the same seed gives the same A, another a different one.
    let again = spec.fresh(32, 400, 1, &Device::Cpu)?.0;
    assert_eq!(max_gap(&a, &again)?, 0.0);
    assert!(max_gap(&a, &spec.fresh(32, 400, 2, &Device::Cpu)?.0)? > 0.0);
    Ok(())
}

#[test]
fn adapted_layer_is_the_merged_weight_and_rslora_scales_by_sqrt_r() -> Result<()> {
    for rslora in [false, true] {
        let spec = LoraSpec { rslora, ..SPEC };
        let (a, b) = (wave(4, 5, 0.9)?, wave(6, 4, 1.1)?);
        let l = layer(spec.layer_tensors("proj", a.clone(), b.clone())?)?;
        let scale = if rslora { 8.0 / 2.0 } else { 8.0 / 4.0 };
        assert_eq!(spec.scale(), scale);
        let merged = (wave(6, 5, 0.7)? + (b.matmul(&a)? * scale)?)?; // (out, in)
        let LinearWeight::Adapted(ad) = l.kind() else {
            panic!("not adapted");
        };
        assert!(max_gap(&ad.merged_weight()?, &merged)? < 1e-6);
        let want = Linear::from_weights(merged, Some(wave(1, 6, 0.2)?.reshape(6)?));
        for rows in [3, 80] {
            // 3 rows take the few-row kernel, 80 the gemm.
            let x = wave(rows, 5, 1.3)?;
            let gap = max_gap(&l.forward(&x)?, &want.forward(&x)?)?;
            assert!(gap < 1e-5, "{rows} rows, rslora {rslora}: {gap}");
        }
    }
    Ok(())
}

#[test]
fn only_the_adapter_gets_gradients() -> Result<()> {
    let (a, b) = (
        Var::from_tensor(&wave(4, 5, 0.9)?)?,
        Var::from_tensor(&wave(6, 4, 1.1)?)?,
    );
    let l = layer(SPEC.layer_tensors("proj", a.as_tensor().clone(), b.as_tensor().clone())?)?;
    let LinearWeight::Adapted(ad) = l.kind() else {
        panic!("not adapted");
    };
    let base = match ad.base() {
        LinearWeight::Dense(w) => w.clone(),
        other => panic!("base {other:?}"),
    };
    for rows in [3, 80] {
        let x = Var::from_tensor(&wave(rows, 5, 1.3)?)?;
        let loss = l.forward_t(x.as_tensor(), true)?.sqr()?.sum_all()?;
        let grads = loss.backward()?;
        assert!(grads.get(&base).is_none(), "the frozen base got a gradient");
        // d loss / d x through the frozen base and the adapter equals the merged layer's.
        let merged = Var::from_tensor(&ad.merged_weight()?)?;
        let x2 = Var::from_tensor(x.as_tensor())?;
        let ref_loss = Linear::from_weights(merged.as_tensor().clone(), l.bias().cloned())
            .forward(x2.as_tensor())?
            .sqr()?
            .sum_all()?;
        let ref_grads = ref_loss.backward()?;
        let (gx, rx) = (
            grads.get(&x).expect("dx"),
            ref_grads.get(&x2).expect("dx ref"),
        );
        assert!(max_gap(gx, rx)? < 1e-4, "dx differs");
        // dL/dA = s B^T dL/dW, dL/dB = s dL/dW A^T, with dL/dW the merged layer's gradient.
        let gw = ref_grads.get(&merged).expect("dW");
        let want_a = (b.as_tensor().t()?.matmul(gw)? * 2.0)?;
        let want_b = (gw.matmul(&a.as_tensor().t()?)? * 2.0)?;
        assert!(max_gap(grads.get(&a).expect("dA"), &want_a)? < 1e-3, "dA");
        assert!(max_gap(grads.get(&b).expect("dB"), &want_b)? < 1e-3, "dB");
    }
    Ok(())
}

#[test]
fn adapter_dropout_acts_in_training_only() -> Result<()> {
    let spec = LoraSpec {
        dropout: 0.5,
        ..SPEC
    };
    let l = layer(spec.layer_tensors("proj", wave(4, 5, 0.9)?, wave(6, 4, 1.1)?)?)?;
    let x = wave(40, 5, 1.3)?;
    let eval = l.forward_t(&x, false)?;
    assert_eq!(max_gap(&eval, &l.forward(&x)?)?, 0.0);
    assert!(
        max_gap(&l.forward_t(&x, true)?, &eval)? > 1e-3,
        "no dropout in training"
    );
    Ok(())
}

#[test]
fn bad_adapter_shapes_and_rank_zero_are_named() -> Result<()> {
    let err = layer(SPEC.layer_tensors("proj", wave(4, 3, 0.9)?, wave(6, 4, 1.1)?)?).unwrap_err();
    assert!(
        err.to_string().contains("proj.lora_A.weight: shape [4, 3]"),
        "{err}"
    );
    let err = layer(SPEC.layer_tensors("proj", wave(4, 5, 0.9)?, wave(6, 3, 1.1)?)?).unwrap_err();
    assert!(
        err.to_string().contains("proj.lora_B.weight: shape [6, 3]"),
        "{err}"
    );
    let zero = LoraSpec { r: 0, ..SPEC };
    let err = zero.fresh(6, 5, 1, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("rank r must be at least 1"),
        "{err}"
    );
    Ok(())
}

#[test]
fn linear_layer_names_lists_every_loaded_linear() -> Result<()> {
    let map = HashMap::from([
        ("a.weight".to_string(), wave(6, 5, 0.7)?),
        ("b.weight".to_string(), wave(5, 6, 0.7)?),
        ("emb.weight".to_string(), wave(9, 5, 0.7)?),
    ]);
    let names = linear_layer_names(map, DType::F32, &Device::Cpu, |vb| {
        candle_nn::embedding(9, 5, vb.pp("emb"))?;
        Linear::new(5, 6, false, vb.pp("a"))?;
        Linear::new(6, 5, false, vb.pp("b"))
    })?;
    assert_eq!(names, ["a", "b"]);
    Ok(())
}

/// `x W^T + s B(A(x * mask))` from candle ops (the base's own product): the fused op's reference.
fn composed(
    x: &Tensor,
    base: &LinearWeight,
    a: &Tensor,
    b: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let xd = match mask {
        Some(m) => (x * m)?,
        None => x.clone(),
    };
    let y0 = match base {
        LinearWeight::Dense(w) => x.matmul(&w.t()?)?,
        LinearWeight::BlockQuantized(q) => {
            tasklm_nn::quant::quantized_matmul(x, std::slice::from_ref(q))?
        }
        other => panic!("base {other:?}"),
    };
    y0 + (xd.matmul(&a.t()?)?.matmul(&b.t()?)? * 2.0)?
}

/// Gradients of `sum(y^2)` for `x`, `a`, `b` (in that order).
fn grads_of(y: &Tensor, vars: [&Var; 3]) -> Result<Vec<Tensor>> {
    let g = y.sqr()?.sum_all()?.backward()?;
    Ok(vars
        .iter()
        .map(|v| g.get(v.as_tensor()).expect("gradient").clone())
        .collect())
}

/// The fused op against the same sum from candle ops, over a dense and a Q8_0 base, with and
/// without dropout (the reference's mask drawn from the same seed): outputs and the gradients
/// of `x`, A and B within 1e-4 (relative to the largest gradient).
#[test]
fn fused_lora_linear_matches_the_composed_ops_with_dropout_and_on_a_quantized_base() -> Result<()> {
    use tasklm_nn::lora_linear::{lora_linear, SeededDropout};
    use tasklm_nn::ops::dropout_mask_seeded;
    use tasklm_nn::quant::{BlockFormat, BlockQuantized};
    let (n, in_dim, out, r) = (70, 64, 6, 4);
    let w = wave(out, in_dim, 0.7)?;
    let q = std::sync::Arc::new(BlockQuantized::quantize(&w, BlockFormat::Q8_0)?);
    for base in [LinearWeight::Dense(w), LinearWeight::BlockQuantized(q)] {
        for p in [0.0f32, 0.3] {
            let vars = || -> Result<[Var; 3]> {
                Ok([
                    Var::from_tensor(&wave(n, in_dim, 1.3)?)?,
                    Var::from_tensor(&wave(r, in_dim, 0.9)?)?,
                    Var::from_tensor(&wave(out, r, 1.1)?)?,
                ])
            };
            let [x, a, b] = vars()?;
            let dropout = (p > 0.0).then_some(SeededDropout { p, seed: 99 });
            let y = lora_linear(
                x.as_tensor(),
                &base,
                a.as_tensor(),
                b.as_tensor(),
                2.0,
                dropout,
            )?;
            let [x2, a2, b2] = vars()?;
            let mask = match p > 0.0 {
                true => Some(dropout_mask_seeded(
                    x.shape(),
                    p,
                    DType::F32,
                    &Device::Cpu,
                    99,
                )?),
                false => None,
            };
            let want = composed(
                x2.as_tensor(),
                &base,
                a2.as_tensor(),
                b2.as_tensor(),
                mask.as_ref(),
            )?;
            let kind = if matches!(base, LinearWeight::Dense(_)) {
                "dense"
            } else {
                "Q8_0"
            };
            let gap = max_gap(&y, &want)?;
            assert!(gap < 1e-4, "forward, p {p}, {kind} base: {gap}");
            let got = grads_of(&y, [&x, &a, &b])?;
            assert!(
                got.iter().all(|g| !g.track_op()),
                "a gradient holds a graph"
            );
            let want = grads_of(&want, [&x2, &a2, &b2])?;
            for (name, g, w) in [
                ("x", &got[0], &want[0]),
                ("A", &got[1], &want[1]),
                ("B", &got[2], &want[2]),
            ] {
                let scale = w.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
                let gap = max_gap(g, w)? / scale;
                assert!(gap < 1e-4, "d{name}, p {p}, {kind} base: {gap}");
            }
        }
    }
    Ok(())
}
