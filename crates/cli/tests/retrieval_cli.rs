//! `tasklm train --task retrieval` from the command line on the tiny sentence-transformers
//! fixture: the trained directory embeds through `tasklm embed` as through `tasklm predict
//! --task retrieval`, `tasklm eval --task retrieval` reports recall, and a bad pair is an
//! error naming its file and line.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tasklm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()
        .expect("run tasklm")
}

fn tasklm_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tasklm");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
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

fn vectors(stdout: &str) -> Vec<Vec<f64>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            serde_json::from_value(v["embedding"].clone()).expect("embedding")
        })
        .collect()
}

#[test]
fn train_embed_predict_and_eval_a_retriever() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("pairs.jsonl");
    let pairs = [
        ("where does john live?", "John Smith lives in Paris."),
        (
            "what is the capital of germany?",
            "The capital of Germany is Berlin.",
        ),
        ("what colour is the sky?", "the sky is blue."),
    ];
    let text: String = pairs
        .iter()
        .map(|(q, p)| serde_json::json!({"query": q, "positive": p}).to_string() + "\n")
        .collect();
    std::fs::write(&data, text).expect("write");
    let out = tmp.path().join("retriever");
    let (d, o) = (data.to_string_lossy(), out.to_string_lossy());
    let report = ok(tasklm(&[
        "train",
        "--task",
        "retrieval",
        "--model",
        &fixture("tiny_retriever"),
        "--data",
        &d,
        "--out",
        &o,
        "--max-steps",
        "30",
        "--batch-size",
        "3",
        "--lr",
        "0.002",
        "--json",
    ]));
    let r: serde_json::Value = serde_json::from_str(report.trim()).expect("report json");
    assert_eq!(r["steps"], 30);
    assert!(out.join("modules.json").is_file() && out.join("1_Pooling/config.json").is_file());
    let input: String = pairs
        .iter()
        .map(|(q, _)| serde_json::json!({"text": q}).to_string() + "\n")
        .collect();
    let embedded = vectors(&ok(tasklm_stdin(&["embed", "--model", &o], &input)));
    let predicted = vectors(&ok(tasklm_stdin(
        &["predict", "--task", "retrieval", "--model", &o],
        &input,
    )));
    assert_eq!(embedded.len(), 3);
    for (a, b) in embedded.iter().zip(&predicted) {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(d < 1e-5, "embed and predict differ by {d}");
    }
    let eval = ok(tasklm(&[
        "eval",
        "--task",
        "retrieval",
        "--model",
        &o,
        "--data",
        &d,
        "--json",
    ]));
    let e: serde_json::Value = serde_json::from_str(eval.trim()).expect("eval json");
    assert_eq!(e["recall@1"], 1.0, "{e}");
    assert_eq!(e["n"], 3);
}

#[test]
fn a_pair_without_a_positive_names_its_file_and_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"query\": \"q\", \"positive\": \"p\"}\n{\"query\": \"q2\"}\n",
    )
    .expect("write");
    let out = tasklm(&[
        "train",
        "--task",
        "retrieval",
        "--model",
        &fixture("tiny_retriever"),
        "--data",
        &data.to_string_lossy(),
        "--out",
        &tmp.path().join("o").to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.jsonl:2") && stderr.contains("`positive`"),
        "{stderr}"
    );
}
