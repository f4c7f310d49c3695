//! `tasklm embed` and `tasklm index` as a user runs them: JSON out, `--queries` answered line
//! by line with their ids, clear errors, and a build or add killed with SIGKILL mid-way leaving
//! the previous version readable and complete.

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tiny() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tiny_encoder")
        .display()
        .to_string()
}

fn tasklm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()
        .expect("run tasklm")
}

fn ok(args: &[&str]) -> String {
    let out = tasklm(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tasklm {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_docs(path: &Path, n: usize, prefix: &str) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let text = format!(
            "{prefix} document number {i} tells of the river {} and the hill {}.",
            i % 97,
            i % 13
        );
        writeln!(
            f,
            "{}",
            serde_json::json!({"id": format!("{prefix}-{i}"), "text": text})
        )
        .unwrap();
    }
}

/// `tasklm index build` of `docs` into `index` with the tiny encoder.
fn build_index(docs: &Path, index: &Path) {
    let (docs, index, model) = (docs.to_str().unwrap(), index.to_str().unwrap(), tiny());
    ok(&[
        "index", "build", "--model", &model, "--data", docs, "--out", index,
    ]);
}

fn stats(index: &Path) -> Value {
    serde_json::from_str(&ok(&["index", "stats", index.to_str().unwrap()])).unwrap()
}

/// Starts `tasklm args`, waits until it is writing a new version (a temporary folder with
/// chunks in it), and kills it with SIGKILL; false if it finished first.
fn kill_mid_write(args: &[&str], index: &Path) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let limit = Duration::from_secs(120);
    let mut killed = false;
    while t0.elapsed() < limit && child.try_wait().unwrap().is_none() {
        let writing = std::fs::read_dir(index).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(".tmp-")
                && std::fs::metadata(e.path().join("chunks.jsonl")).is_ok_and(|m| m.len() > 0)
        });
        if writing {
            child.kill().unwrap(); // SIGKILL on Unix
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if !killed {
        let _ = child.kill();
    }
    child.wait().unwrap();
    assert!(t0.elapsed() < limit, "the write never started");
    killed
}

#[test]
fn sigkill_mid_build_or_add_leaves_the_previous_index() {
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = (dir.path().join("small.jsonl"), dir.path().join("big.jsonl"));
    write_docs(&small, 3, "small");
    write_docs(&big, 20_000, "big");
    let index = dir.path().join("index");
    let idx = index.to_str().unwrap();
    let model = tiny();
    build_index(&small, &index);
    assert_eq!(stats(&index)["version"], 1);

    let build = [
        "index",
        "build",
        "--model",
        &model,
        "--data",
        big.to_str().unwrap(),
        "--out",
        idx,
        "--batch-size",
        "8",
    ];
    assert!(
        kill_mid_write(&build, &index),
        "the build finished before it could be killed"
    );
    let add = [
        "index",
        "add",
        idx,
        "--data",
        big.to_str().unwrap(),
        "--batch-size",
        "8",
    ];
    assert!(
        kill_mid_write(&add, &index),
        "the add finished before it could be killed"
    );

    let s = stats(&index);
    assert_eq!(
        (s["version"].as_u64(), s["documents"].as_u64()),
        (Some(1), Some(3))
    );
    let out = ok(&[
        "index",
        "search",
        idx,
        "--query",
        "small document number 2",
        "-k",
        "3",
        "--mode",
        "bm25",
    ]);
    let hits = json_lines(&out)[0]["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["doc_id"], "small-2");

    // The next write completes and clears what the killed ones left.
    let more = dir.path().join("more.jsonl");
    write_docs(&more, 2, "more");
    ok(&["index", "add", idx, "--data", more.to_str().unwrap()]);
    let s = stats(&index);
    assert_eq!(
        (s["version"].as_u64(), s["documents"].as_u64()),
        (Some(2), Some(5))
    );
    let names: Vec<String> = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "CURRENT and one version: {names:?}");
}

#[test]
fn search_many_queries_and_embed() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    write_docs(&docs, 20, "doc");
    let index = dir.path().join("index");
    let idx = index.to_str().unwrap();
    let model = tiny();
    build_index(&docs, &index);
    let queries = dir.path().join("queries.jsonl");
    std::fs::write(
        &queries,
        "{\"id\": \"q1\", \"query\": \"river 5\"}\n{\"id\": 2, \"query\": \"hill 7\"}\n",
    )
    .unwrap();
    for mode in ["bm25", "dense", "hybrid"] {
        let out = ok(&[
            "index",
            "search",
            idx,
            "--queries",
            queries.to_str().unwrap(),
            "-k",
            "4",
            "--mode",
            mode,
        ]);
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 2, "{mode}");
        assert_eq!(
            (&lines[0]["id"], &lines[1]["id"]),
            (&Value::from("q1"), &Value::from(2))
        );
        for l in &lines {
            let hits = l["hits"].as_array().unwrap();
            assert_eq!(hits.len(), 4, "{mode}");
            for h in hits {
                assert!(h["doc_id"].as_str().unwrap().starts_with("doc-"));
                assert!(h["end"].as_u64() > h["start"].as_u64());
                assert!(h["score"].is_number() && h["text"].is_string());
            }
        }
    }
    let e = tasklm(&[
        "index",
        "search",
        dir.path().join("none").to_str().unwrap(),
        "--query",
        "x",
    ]);
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && stderr.contains("no index"),
        "{stderr}"
    );

    let input = dir.path().join("texts.jsonl");
    std::fs::write(
        &input,
        "{\"id\": 9, \"text\": \"hello world\"}\n{\"text\": \"another one\"}\n",
    )
    .unwrap();
    let out = ok(&[
        "embed",
        "--model",
        &model,
        "--input",
        input.to_str().unwrap(),
        "--batch-size",
        "1",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 9);
    assert!(lines[1].get("id").is_none());
    let v: Vec<f64> = lines[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v.len(), 32);
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    std::fs::write(&input, "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n").unwrap();
    let e = tasklm(&[
        "embed",
        "--model",
        &model,
        "--input",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && stderr.contains("texts.jsonl:2"),
        "{stderr}"
    );
}
