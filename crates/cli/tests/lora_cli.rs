//! LoRA from the command line: a PEFT adapter evaluates through `--adapter` (with or without
//! `--model`) as through its merged directory, and bad LoRA flags are clear errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tasklm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()
        .expect("run tasklm")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    stderr
}

/// A directory removed when dropped.
struct Tmp(PathBuf);

impl Tmp {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `eval --task sft --json` with `model_args`, its loss.
fn loss(model_args: &[&str], data: &str) -> f64 {
    let mut args = vec!["eval", "--task", "sft", "--data", data, "--json"];
    args.extend_from_slice(model_args);
    let v: serde_json::Value = serde_json::from_str(&ok(tasklm(&args))).expect("json");
    v["loss"].as_f64().expect("loss")
}

#[test]
fn an_adapter_evaluates_as_its_merge() {
    let tmp = Tmp(std::env::temp_dir().join(format!("tasklm-lora-cli-{}", std::process::id())));
    std::fs::create_dir_all(tmp.path()).expect("tmp");
    let data = tmp.path().join("d.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"Where does John live?\", \"completion\": \" John lives in Paris.\"}\n",
    )
    .expect("data");
    let data = data.to_string_lossy().into_owned();
    let (adapter, base) = (fixture("lora_decoder"), fixture("tiny_decoder"));
    let merged = tmp.path().join("merged").to_string_lossy().into_owned();
    ok(tasklm(&[
        "merge",
        "--model",
        &base,
        "--adapter",
        &adapter,
        "--out",
        &merged,
    ]));
    let by_config = loss(&["--adapter", &adapter], &data);
    let with_base = loss(&["--model", &base, "--adapter", &adapter], &data);
    let as_model = loss(&["--model", &adapter], &data);
    let m = loss(&["--model", &merged], &data);
    assert_eq!(by_config, with_base);
    assert_eq!(by_config, as_model);
    assert!(
        (by_config - m).abs() < 1e-4,
        "adapter {by_config} vs merged {m}"
    );
    assert!(
        (loss(&["--model", &base], &data) - m).abs() > 1e-3,
        "the adapter changes nothing"
    );
}

#[test]
fn bad_lora_flags_are_clear_errors() {
    let base = fixture("tiny_decoder");
    let train = |extra: &[&str]| {
        let mut a = vec![
            "train", "--task", "sft", "--model", &base, "--data", "x.jsonl",
        ];
        a.extend_from_slice(&["--out", "/nonexistent/out"]);
        a.extend_from_slice(extra);
        err(tasklm(&a))
    };
    assert!(train(&["--lora", "--lora-r", "0"]).contains("--lora-r must be at least 1"));
    assert!(train(&["--lora-r", "4"]).contains("--lora-r applies to LoRA training: add --lora"));
    assert!(train(&["--lora", "--lora-dropout", "1.5"]).contains("--lora-dropout 1.5"));
    let e = err(tasklm(&[
        "eval",
        "--task",
        "sft",
        "--adapter",
        &base,
        "--data",
        "x.jsonl",
    ]));
    assert!(
        e.contains("not a LoRA adapter directory (no adapter_config.json)"),
        "{e}"
    );
    let e = err(tasklm(&[
        "merge",
        "--adapter",
        &base,
        "--out",
        "/nonexistent/m",
    ]));
    assert!(e.contains("not a LoRA adapter directory"), "{e}");
}
