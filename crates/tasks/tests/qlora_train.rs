//! LoRA over a quantized GGUF base (`train --lora --quantized`, QLoRA-style), on the tiny decoder
//! as block-quantized GGUF files (`scripts/golden/tiny_gguf.py`: `tiny_decoder_q.gguf` mixes
//! Q8_0, Q4_1 and Q4_0 with its own head; `tiny_decoder_tied_q.gguf` is Q4_1 with the head
//! tied to a Q8_0 embedding table).
//!
//! - The adapters' gradients over the quantized base match those over its dequantized f32 copy
//!   within [`GRAD_TOL`] (the gap is the forward's 8-bit rounding of the activations; the
//!   backward's transposed product is exact on the dequantized weights).
//! - Training drives the loss down while every base matrix stays block-quantized and unchanged.
//! - The adapter directory loads over the GGUF base kept quantized by itself (`generate`,
//!   `eval`), with the training's final evaluation loss.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::path::{Path, PathBuf};
use tasklm_data::{collate, Features};
use tasklm_hub::{load_checkpoint_with, load_model, resolve, LoadOptions};
use tasklm_models::CausalLm;
use tasklm_nn::quant::BlockQuantized;
use tasklm_nn::{LinearWeight, LoraSpec};
use tasklm_tasks::{EvalJob, TaskKind, TaskOptions, TrainJob};
use tasklm_train::{causal_lm_loss, trainable_decoder_lora, LoraParams, LoraTraining, TrainArgs};

/// Largest gap between an adapter gradient over the quantized base and over the dequantized
/// base, relative to the largest entry of that gradient. Measured 0.0122 (tiny_decoder_q) and
/// 0.0099 (tied): the forward's 8-bit activations, through two layers and the head.
const GRAD_TOL: f32 = 0.03;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn lora(targets: &[&str], save: &[&str], quantized_base: bool) -> LoraTraining {
    LoraTraining {
        spec: LoraSpec {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            rslora: false,
        },
        targets: targets.iter().map(|s| s.to_string()).collect(),
        modules_to_save: save.iter().map(|s| s.to_string()).collect(),
        seed: 0,
        quantized_base,
    }
}

/// The model over `gguf` for LoRA training, its base quantized or dequantized to f32.
fn build(
    gguf: &str,
    quantized: bool,
    l: &LoraTraining,
) -> Result<(tasklm_models::DecoderModel, LoraParams)> {
    let source = resolve(fixture(gguf).to_str().context("path")?, false)?;
    let opts = LoadOptions {
        dtype: DType::F32,
        quantized,
    };
    let ck = load_checkpoint_with(&source, opts, &Device::Cpu)?;
    assert_eq!(ck.quantized.is_empty(), !quantized);
    Ok(trainable_decoder_lora(
        ck.architecture,
        &ck.config,
        ck.tensors,
        ck.quantized,
        l,
    )?)
}

fn features() -> Vec<Features> {
    let rows = [
        (vec![5u32, 17, 42, 99, 230, 7, 64, 301], 3),
        (vec![11, 250, 8, 77, 140, 360, 2], 2),
    ];
    rows.iter()
        .map(|(ids, prompt)| {
            let labels = ids
                .iter()
                .enumerate()
                .map(|(i, &t)| if i < *prompt { -100 } else { i64::from(t) })
                .collect();
            Features::new(ids.clone(), labels)
        })
        .collect()
}

fn batch() -> Result<tasklm_data::Batch> {
    Ok(collate(&features(), 0, &Device::Cpu)?)
}

/// A fixed pseudo-random fill in [-0.5, 0.5) for B, so that A's gradient is not zero.
fn fill(v: &Var, seed: u64) -> Result<()> {
    let mut s = seed;
    let n = v.as_tensor().elem_count();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    v.set(&Tensor::from_vec(
        values,
        v.as_tensor().shape(),
        &Device::Cpu,
    )?)?;
    Ok(())
}

fn kind(w: &LinearWeight) -> &'static str {
    match w {
        LinearWeight::Dense(_) => "dense",
        LinearWeight::BlockQuantized(_) => "block-quantized",
        LinearWeight::Quantized(_) => "k-quant",
        LinearWeight::Adapted(a) => match a.base() {
            LinearWeight::BlockQuantized(_) => "adapted block-quantized",
            LinearWeight::Dense(_) => "adapted dense",
            _ => "adapted other",
        },
        _ => "other",
    }
}

#[test]
fn adapter_gradients_over_the_quantized_base_match_the_dequantized_base() -> Result<()> {
    for gguf in ["tiny_decoder_q.gguf", "tiny_decoder_tied_q.gguf"] {
        let l = lora(&["all-linear"], &[], true);
        let (qm, qp) = build(gguf, true, &l)?;
        let (dm, dp) = build(gguf, false, &l)?;
        // Every projection is an adapter over a block-quantized base; the head (not adapted,
        // tied or not) is block-quantized too. Over the dequantized base, all dense.
        for (name, lin) in qm.linear_layers() {
            let want = if name == "lm_head" {
                "block-quantized"
            } else {
                "adapted block-quantized"
            };
            assert_eq!(kind(lin.kind()), want, "{gguf}: {name}");
        }
        for (name, lin) in dm.linear_layers() {
            let want = if name == "lm_head" {
                "dense"
            } else {
                "adapted dense"
            };
            assert_eq!(kind(lin.kind()), want, "{gguf}: {name}");
        }
        assert_eq!(qp.params.len(), 2 * 2 * 7);
        for (i, ((qn, qv), (dn, dv))) in qp.params.iter().zip(&dp.params).enumerate() {
            assert_eq!(qn, dn);
            assert_eq!(
                qv.as_tensor().to_vec2::<f32>()?,
                dv.as_tensor().to_vec2::<f32>()?
            );
            if qn.ends_with("lora_B.weight") {
                fill(qv, i as u64)?;
                fill(dv, i as u64)?;
            }
        }
        let b = batch()?;
        let (qs, qk) = causal_lm_loss(qm.as_ref(), &b, true)?;
        let (ds, dk) = causal_lm_loss(dm.as_ref(), &b, true)?;
        assert_eq!(qk, dk);
        let (ql, dl) = (qs.to_scalar::<f32>()?, ds.to_scalar::<f32>()?);
        assert!(
            (ql - dl).abs() < 1e-3 * dl.abs(),
            "{gguf}: loss {ql} vs {dl}"
        );
        let (qg, dg) = (qs.backward()?, ds.backward()?);
        let mut worst = (0f32, String::new());
        for ((name, qv), (_, dv)) in qp.params.iter().zip(&dp.params) {
            let q = qg.get(qv.as_tensor()).context("no gradient")?;
            let d = dg.get(dv.as_tensor()).context("no gradient")?;
            let scale = d.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(scale > 0.0, "{gguf}: {name} has a zero gradient");
            let gap = (q - d)?.abs()?.max_all()?.to_scalar::<f32>()? / scale;
            if gap > worst.0 {
                worst = (gap, name.clone());
            }
        }
        println!("{gguf}: loss {ql} vs {dl}; worst gradient gap {worst:?}");
        assert!(
            worst.0 < GRAD_TOL,
            "{gguf}: worst relative gradient gap {worst:?}"
        );
    }
    Ok(())
}

/// Every block-quantized base matrix of `model`, dequantized, by layer name.
fn base_values(model: &dyn CausalLm) -> Vec<(String, Vec<f32>)> {
    let block = |w: &LinearWeight| -> Option<std::sync::Arc<BlockQuantized>> {
        match w {
            LinearWeight::BlockQuantized(m) => Some(m.clone()),
            LinearWeight::Adapted(a) => match a.base() {
                LinearWeight::BlockQuantized(m) => Some(m.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    model
        .linear_layers()
        .into_iter()
        .filter_map(|(n, l)| block(l.kind()).map(|m| (n, m.dequantize())))
        .collect()
}

#[test]
fn training_over_the_quantized_base_keeps_it_quantized_and_unchanged() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let l = lora(&["q_proj", "v_proj", "down_proj"], &[], true);
    let (model, p) = build("tiny_decoder_tied_q.gguf", true, &l)?;
    let before = base_values(model.as_ref());
    // q, k, v, o, gate, up, down of both layers, and the tied head.
    assert_eq!(before.len(), 15);
    let frozen: Vec<(String, Vec<f32>)> = p
        .tensors
        .iter()
        .filter(|(k, _)| !k.contains("lora_"))
        .map(|(k, t)| Ok((k.clone(), t.flatten_all()?.to_vec1::<f32>()?)))
        .collect::<Result<_>>()?;
    let features = features();
    let obj = tasklm_train::LmObjective {
        model,
        params: p.params.clone(),
        train: features.clone(),
        eval: features,
        pad_id: 0,
        eval_batch_size: 2,
        files: Box::new(|_: &Path| Ok(())),
        weights_file: tasklm_hub::adapter::ADAPTER_WEIGHTS,
    };
    let args = TrainArgs {
        max_steps: Some(25),
        batch_size: 2,
        lr: 5e-2,
        warmup_ratio: 0.0,
        save_every: 0,
        ..TrainArgs::default()
    };
    let opts = tasklm_train::TrainOptions {
        out: &tmp.path().join("out"),
        resume: false,
        progress: false,
        stop: None,
    };
    let s = tasklm_train::train(&obj, &args, opts)?;
    let (first, last) = (s.losses[0], s.losses[s.losses.len() - 1]);
    // The head is the fixture's random embedding table (std 0.02), frozen: it bounds how far
    // the logits can move, so the fall is modest here (5.98 -> 5.42 measured); with the head
    // trained (the next test) the loss falls below a fifth.
    assert!(last < 0.95 * first, "loss {first} -> {last}");
    let after = base_values(obj.model.as_ref());
    assert_eq!(
        before, after,
        "a quantized base matrix changed or was replaced"
    );
    for (k, v) in &frozen {
        assert_eq!(
            &p.tensors[k].flatten_all()?.to_vec1::<f32>()?,
            v,
            "{k} changed"
        );
    }
    Ok(())
}

fn write_data(dir: &Path) -> Result<PathBuf> {
    let rows = [
        (
            "What is the capital of France?",
            " The capital of France is Paris.",
        ),
        ("Where does John live?", " John lives in Paris."),
    ];
    let path = dir.join("train.jsonl");
    let body: Vec<String> = rows
        .iter()
        .map(|(p, c)| serde_json::json!({"prompt": p, "completion": c}).to_string())
        .collect();
    std::fs::write(&path, body.join("\n") + "\n")?;
    Ok(path)
}

#[test]
fn the_adapter_loads_over_the_quantized_base_with_the_training_loss() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = write_data(tmp.path())?;
    let out = tmp.path().join("out");
    // The untied head is saved whole (trained, so dequantized); the rest stays quantized.
    let job = TrainJob {
        eval: Some(data.clone()),
        max_seq_len: Some(64),
        args: TrainArgs {
            max_steps: Some(30),
            batch_size: 2,
            lr: 2e-2,
            warmup_ratio: 0.0,
            save_every: 0,
            ..TrainArgs::default()
        },
        options: TaskOptions {
            lora: Some(lora(&["all-linear"], &["lm_head"], true)),
            ..TaskOptions::default()
        },
        ..TrainJob::new(
            TaskKind::Sft,
            fixture("tiny_decoder_q.gguf").to_str().unwrap_or_default(),
            data.clone(),
            out.clone(),
        )
    };
    let report = tasklm_tasks::train(&job, &|_| {})?;
    let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
    assert!(last < 0.2 * first, "loss {first} -> {last}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tasklm.json"))?)?;
    assert_eq!(meta["quantized_base"], true);

    // Loaded as `generate --adapter OUT` loads it: over the GGUF base, kept quantized, with
    // the trained head dense.
    let source = resolve(out.to_str().context("path")?, false)?;
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    let decoder = ck.decoder().context("a decoder")?;
    for (name, lin) in decoder.linear_layers() {
        let want = if name == "lm_head" {
            "dense"
        } else {
            "adapted block-quantized"
        };
        assert_eq!(kind(lin.kind()), want, "{name}");
    }

    // `eval --model OUT`: the loss the training's final evaluation measured.
    let r = tasklm_tasks::evaluate(
        &EvalJob {
            max_seq_len: Some(64),
            batch_size: 2,
            ..EvalJob::new(TaskKind::Sft, out.to_str().unwrap_or_default(), data)
        },
        &|_: &str| {},
    )?;
    let adapted = r.metric_f64("loss").context("eval loss")?;
    let final_eval = report.metric_f64("loss").context("final eval")?;
    assert!(
        (adapted - final_eval).abs() < 1e-6,
        "{adapted} vs {final_eval}"
    );
    Ok(())
}

#[test]
fn quantized_needs_lora_on_a_gguf_decoder() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = write_data(tmp.path())?;
    let dir_job = TrainJob {
        options: TaskOptions {
            lora: Some(lora(&[], &[], true)),
            ..TaskOptions::default()
        },
        ..TrainJob::new(
            TaskKind::Sft,
            fixture("tiny_decoder").to_str().unwrap_or_default(),
            data.clone(),
            tmp.path().join("a"),
        )
    };
    let err = tasklm_tasks::train(&dir_job, &|_| {})
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--quantized needs a GGUF base model"), "{err}");
    // Without --quantized, LoRA on a GGUF says that the option exists.
    let told = std::cell::RefCell::new(Vec::new());
    let gguf_job = TrainJob {
        args: TrainArgs {
            max_steps: Some(1),
            batch_size: 2,
            save_every: 0,
            ..TrainArgs::default()
        },
        options: TaskOptions {
            lora: Some(lora(&[], &[], false)),
            ..TaskOptions::default()
        },
        ..TrainJob::new(
            TaskKind::Sft,
            fixture("tiny_decoder_q.gguf").to_str().unwrap_or_default(),
            data,
            tmp.path().join("b"),
        )
    };
    tasklm_tasks::train(&gguf_job, &|m: &str| told.borrow_mut().push(m.to_string()))?;
    assert!(
        told.borrow()
            .iter()
            .any(|m| m.contains("--quantized keeps its matrices")),
        "{:?}",
        told.borrow()
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("b/tasklm.json"))?)?;
    assert!(meta.get("quantized_base").is_none());
    Ok(())
}
