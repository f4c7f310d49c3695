//! `tasklm eval` of a generative task with beam search on the tiny decoder: the run scores
//! every record and writes a prediction for each; beam search with several samples is
//! refused.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn tasklm(args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

#[test]
fn generative_eval_runs_beam_search() -> Result<()> {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_decoder");
    let model = model.to_str().context("path")?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("qa.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"what is two plus two?\", \"answer\": \"four\"}\n{\"question\": \"capital of france?\", \"answer\": \"paris\"}\n",
    )?;
    let preds = tmp.path().join("preds.jsonl");
    let data_s = data.to_str().context("path")?;
    let (ok, out, err) = tasklm(&[
        "eval",
        "--task",
        "genqa",
        "--model",
        model,
        "--data",
        data_s,
        "--num-beams",
        "3",
        "--max-new-tokens",
        "6",
        "--predictions",
        preds.to_str().context("path")?,
        "--json",
    ])?;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(out.trim())?;
    assert_eq!(report["n"], 2, "{report}");
    assert!(report["f1"].is_number(), "{report}");
    let lines = std::fs::read_to_string(&preds)?;
    assert_eq!(lines.lines().count(), 2);
    let (ok, _, err) = tasklm(&[
        "eval",
        "--task",
        "genqa",
        "--model",
        model,
        "--data",
        data_s,
        "--num-beams",
        "3",
        "--samples",
        "2",
        "--temperature",
        "0.7",
    ])?;
    assert!(
        !ok && err.contains("beam search gives one sequence"),
        "{err}"
    );
    Ok(())
}
