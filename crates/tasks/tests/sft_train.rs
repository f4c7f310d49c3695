//! SFT end to end on the real SmolLM2-135M-Instruct: a few updates on a tiny file lower the
//! completion loss, and the output directory loads back (weights, config, tokenizer,
//! provenance) and evaluates. Skips when the model is not cached (CI pulls it and requires it).

use anyhow::Result;
use std::path::PathBuf;
use tasklm_data::Truncation;
use tasklm_hub::testing::catalog_model;
use tasklm_tasks::{EvalJob, TaskKind, TaskOptions, TrainJob};
use tasklm_train::TrainArgs;

fn write_data(dir: &std::path::Path) -> Result<PathBuf> {
    let rows = [
        ("Name a colour of the sky.\n", "The sky is blue."),
        ("What is two plus two?\n", "Two plus two is four."),
        ("Name a fruit that is yellow.\n", "A banana is yellow."),
        ("What do cows drink?\n", "Cows drink water."),
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
fn sft_training_lowers_the_completion_loss_and_writes_a_loadable_model() -> Result<()> {
    if catalog_model("smollm2-135m-instruct")?.is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let data = write_data(tmp.path())?;
    let out = tmp.path().join("out");
    let quiet = |_: &str| {};
    let before = tasklm_tasks::evaluate(
        &EvalJob {
            max_seq_len: Some(64),
            truncation: Truncation::Left,
            batch_size: 4,
            ..EvalJob::new(TaskKind::Sft, "smollm2-135m-instruct", data.clone())
        },
        &quiet,
    )?;
    assert_eq!(before.count_of("n"), 4);
    let job = TrainJob {
        eval: Some(data.clone()),
        max_seq_len: Some(64),
        truncation: Truncation::Left,
        args: TrainArgs {
            max_steps: Some(4),
            batch_size: 4,
            lr: 3e-4,
            ..TrainArgs::default()
        },
        options: TaskOptions {
            pack: true,
            ..TaskOptions::default()
        },
        ..TrainJob::new(
            TaskKind::Sft,
            "smollm2-135m-instruct",
            data.clone(),
            out.clone(),
        )
    };
    let report = tasklm_tasks::train(&job, &quiet)?;
    assert_eq!(report.count_of("steps"), 4);
    assert_eq!(
        report.count_of("sequences"),
        1,
        "four short records pack into one sequence"
    );
    assert_eq!(report.metrics[0].0, "loss", "eval metrics");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "tasklm.json",
        "metrics.jsonl",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tasklm.json"))?)?;
    assert_eq!(meta["task"], "sft");
    assert_eq!(meta["data"]["train"]["records"], 4);
    let tc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json"))?)?;
    assert!(tc["chat_template"]
        .as_str()
        .is_some_and(|t| t.contains("im_start")));
    let after = tasklm_tasks::evaluate(
        &EvalJob {
            max_seq_len: Some(64),
            truncation: Truncation::Left,
            batch_size: 4,
            ..EvalJob::new(TaskKind::Sft, out.to_str().expect("utf-8"), data.clone())
        },
        &quiet,
    )?;
    let loss = |r: &tasklm_tasks::Report| r.metric_f64("loss").unwrap_or(f64::NAN);
    let trained = loss(&report);
    assert!(
        (loss(&after) - trained).abs() < 1e-4,
        "reloaded {} vs trained {trained}",
        loss(&after),
    );
    assert!(
        loss(&after) < loss(&before) * 0.7,
        "loss only went from {} to {}",
        loss(&before),
        loss(&after)
    );
    Ok(())
}
