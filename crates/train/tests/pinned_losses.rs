//! Pinned per-step losses, as llm.c pins its expected losses: 10 SFT updates of the tiny
//! decoder (`tests/fixtures/tiny_decoder`) on a fixed batch of 4 rows (2 micro-batches of 2,
//! warmup, linear decay, weight decay, clipping active) give the losses, gradient norms and
//! learning rates PyTorch gives for the same update (`scripts/golden/sft_losses.py`), to 1e-5.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde_json::Value;
use std::path::PathBuf;
use tasklm_data::Features;
use tasklm_models::{weights, Architecture, LlamaConfig};
use tasklm_train::trainer::METRICS;
use tasklm_train::{train, trainable_decoder, LmObjective, TrainArgs, TrainOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn numbers(v: &Value, key: &str) -> Result<Vec<f64>> {
    v[key]
        .as_array()
        .with_context(|| format!("`{key}` is not an array"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .with_context(|| format!("`{key}`: {x} is not a number"))
        })
        .collect()
}

fn ints<T: TryFrom<i64>>(v: &Value, key: &str) -> Result<Vec<T>> {
    v[key]
        .as_array()
        .with_context(|| format!("`{key}` is not an array"))?
        .iter()
        .map(|x| {
            x.as_i64()
                .and_then(|i| T::try_from(i).ok())
                .with_context(|| format!("`{key}`: {x} is out of range"))
        })
        .collect()
}

#[test]
fn ten_sft_updates_match_pytorch_to_1e5() -> Result<()> {
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(
        fixtures().join("sft_losses.json"),
    )?)?;
    let args: TrainArgs = serde_json::from_value(fx["args"].clone())?;
    let rows: Vec<Features> = fx["rows"]
        .as_array()
        .context("rows")?
        .iter()
        .map(|r| Ok(Features::new(ints(r, "input_ids")?, ints(r, "labels")?)))
        .collect::<Result<_>>()?;
    let dir = fixtures().join(fx["model"].as_str().context("model")?);
    let cfg: LlamaConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let tensors = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
    let (model, params) = trainable_decoder(Architecture::Llama, &cfg, tensors)?;
    let config = dir.join("config.json");
    let obj = LmObjective {
        model,
        params,
        train: rows,
        eval: vec![],
        pad_id: 0,
        eval_batch_size: 4,
        weights_file: "model.safetensors",
        files: Box::new(move |d| {
            std::fs::copy(&config, d.join("config.json"))
                .map_err(tasklm_train::TrainError::objective)?;
            Ok(())
        }),
    };
    let out = tempfile::tempdir()?;
    let summary = train(
        &obj,
        &args,
        TrainOptions {
            out: out.path(),
            resume: false,
            progress: false,
            stop: None,
        },
    )?;
    let want = numbers(&fx, "losses")?;
    assert_eq!(summary.losses.len(), want.len(), "one loss per update");
    let log: Vec<Value> = std::fs::read_to_string(out.path().join(METRICS))?
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    let norms = numbers(&fx, "grad_norms")?;
    let lrs = numbers(&fx, "lrs")?;
    let mut report = String::new();
    let mut worst = 0f64;
    for (i, (got, want)) in summary.losses.iter().zip(&want).enumerate() {
        let rec = log
            .iter()
            .find(|r| r["step"].as_u64() == Some(i as u64 + 1))
            .with_context(|| format!("metrics.jsonl has no step {}", i + 1))?;
        let norm = rec["grad_norm"].as_f64().context("grad_norm")?;
        let lr = rec["lr"].as_f64().context("lr")?;
        report += &format!(
            "step {:2}: loss {got:.7} want {want:.7} | grad_norm {norm:.7} want {:.7} | lr {lr:.3e}\n",
            i + 1,
            norms[i]
        );
        worst = worst.max((got - want).abs());
        assert!(
            (norm - norms[i]).abs() < 1e-5,
            "grad norm of step {}\n{report}",
            i + 1
        );
        assert!(
            (lr - lrs[i]).abs() < 1e-12,
            "lr of step {}\n{report}",
            i + 1
        );
    }
    assert!(
        worst < 1e-5,
        "a loss differs by {worst:.2e} from PyTorch\n{report}"
    );
    assert!(
        want[want.len() - 1] < want[0] - 0.1,
        "the pinned run must learn: {want:?}"
    );
    eprintln!("{report}max |loss diff| {worst:.2e}");
    Ok(())
}
