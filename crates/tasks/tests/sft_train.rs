//! SFT end to end on the real SmolLM2-135M-Instruct: a few updates on a tiny file lower the
//! completion loss, and the output directory loads back (weights, config, tokenizer,
//! provenance) and evaluates. Skips when the model is not cached (CI pulls it and requires it).

use anyhow::Result;
use std::path::PathBuf;
use tasklm_data::Truncation;
use tasklm_hub::testing::catalog_model;
use tasklm_tasks::sft;
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
    let before = sft::evaluate(
        "smollm2-135m-instruct",
        &data,
        Some(64),
        Truncation::Left,
        4,
        &quiet,
    )?;
    assert_eq!(before.n, 4);
    let job = sft::SftJob {
        model: "smollm2-135m-instruct".into(),
        data: data.clone(),
        eval: Some(data.clone()),
        out: out.clone(),
        max_seq_len: Some(64),
        truncation: Truncation::Left,
        pack: true,
        args: TrainArgs {
            max_steps: Some(4),
            batch_size: 4,
            lr: 3e-4,
            ..TrainArgs::default()
        },
        resume: false,
        progress: false,
        stop: None,
    };
    let report = sft::train(&job, &quiet)?;
    assert_eq!(report.summary.steps, 4);
    assert_eq!(
        report.sequences, 1,
        "four short records pack into one sequence"
    );
    let eval = report.summary.final_eval.expect("eval metrics");
    assert_eq!(eval[0].0, "loss");
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
    let after = sft::evaluate(
        out.to_str().expect("utf-8"),
        &data,
        Some(64),
        Truncation::Left,
        4,
        &quiet,
    )?;
    assert!(
        (after.loss - eval[0].1).abs() < 1e-4,
        "reloaded {} vs trained {}",
        after.loss,
        eval[0].1
    );
    assert!(
        after.loss < before.loss * 0.7,
        "loss only went from {} to {}",
        before.loss,
        after.loss
    );
    Ok(())
}
