//! Helpers of `task_plumbing.rs`: run the binary, write tiny data, read its JSON outputs.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    p.to_str().expect("utf-8 fixture path").to_string()
}

pub fn decoder() -> String {
    fixture("tiny_decoder")
}

pub fn encoder() -> String {
    fixture("tiny_encoder")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tasklm-plumbing-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

pub fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write test data");
    p.to_str().expect("utf-8 path").to_string()
}

pub fn jsonl(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `tasklm --threads 1 ARGS` (tests run side by side), asserting success; returns stdout.
pub fn tasklm(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .arg("--threads")
        .arg("1")
        .args(args)
        .output()
        .expect("run tasklm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "tasklm {} failed ({}):\n{stderr}",
        args.join(" "),
        out.status
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// `tasklm train` with quick trainer settings (batch size 4 unless `extra` sets it, no
/// checkpoint but the last); returns the output directory.
pub fn train(task: &str, model: &str, data: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "train",
        "--task",
        task,
        "--model",
        model,
        "--data",
        data,
        "--out",
        path(out),
        "--save-every",
        "0",
    ];
    if !extra.contains(&"--batch-size") {
        args.extend_from_slice(&["--batch-size", "4"]);
    }
    args.extend_from_slice(extra);
    tasklm(&args);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tasklm.json",
    ] {
        assert!(
            out.join(f).is_file(),
            "{task}: the trained directory lacks {f}"
        );
    }
    let meta = read_json(&out.join("tasklm.json"));
    assert_eq!(meta["task"], task, "tasklm.json: {meta}");
    out.to_path_buf()
}

pub fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The per-update training losses in `out/metrics.jsonl`.
pub fn losses(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("metrics.jsonl line"))
        .filter_map(|v| v.get("loss").and_then(Value::as_f64))
        .collect()
}

/// The mean of the last three training losses is below the first by `margin`.
pub fn assert_loss_falls(out: &Path, steps: usize, margin: f64) {
    let l = losses(out);
    assert_eq!(l.len(), steps, "one loss per update: {l:?}");
    let tail = l[l.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        tail < l[0] - margin,
        "the loss did not fall by {margin}: {l:?}"
    );
}

/// `tasklm eval ... --json`: the one JSON object it prints, with `keys` all numbers and `n`.
pub fn eval(task: &str, model: &str, data: &str, extra: &[&str], keys: &[&str], n: u64) -> Value {
    let mut args = vec![
        "eval", "--task", task, "--model", model, "--data", data, "--json",
    ];
    args.extend_from_slice(extra);
    let stdout = tasklm(&args);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{task} eval: not one JSON object ({e}): {stdout}"));
    for k in keys {
        let x = v[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{task} eval: `{k}` is not a number in {v}"));
        assert!(x.is_finite(), "{task} eval: `{k}` = {x}");
    }
    assert_eq!(v["n"].as_u64(), Some(n), "{task} eval: n in {v}");
    v
}

/// `tasklm predict` over `records`: one JSON object per record.
pub fn predict(
    task: &str,
    model: &str,
    dir: &Path,
    records: &[Value],
    extra: &[&str],
) -> Vec<Value> {
    let input = write(dir, &format!("{task}-predict.jsonl"), &jsonl(records));
    let mut args = vec![
        "predict", "--task", task, "--model", model, "--input", &input,
    ];
    args.extend_from_slice(extra);
    let stdout = tasklm(&args);
    let out: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{task} predict: {e}: {l}")))
        .collect();
    assert_eq!(out.len(), records.len(), "{task} predict: {stdout}");
    out
}

pub fn unit_interval(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {v} is not a number"));
    assert!((0.0..=1.0).contains(&x), "{what}: {x} is outside [0, 1]");
    x
}

pub fn string<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: {v} is not a string"))
}

/// Eight short movie reviews with SST-2 labels (1 positive, 0 negative).
pub const REVIEWS: [(&str, &str); 8] = [
    ("a wonderful, moving film", "1"),
    ("a dull and boring movie", "0"),
    ("the best movie in years, truly great", "1"),
    ("terrible acting and a bad script", "0"),
    ("i loved every minute of it", "1"),
    ("an awful mess, i hated it", "0"),
    ("a charming and funny ride", "1"),
    ("a tedious, lifeless film", "0"),
];

/// [`REVIEWS`] as an SST-2 TSV file's text.
pub fn reviews_tsv() -> String {
    std::iter::once("sentence\tlabel\n".to_string())
        .chain(REVIEWS.iter().map(|(t, l)| format!("{t}\t{l}\n")))
        .collect()
}
