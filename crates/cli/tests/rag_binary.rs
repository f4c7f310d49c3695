//! `tasklm rag` and `eval --task rag` as a user runs them: answers with citations (document ids
//! and spans of the passages in the prompt), retrieval recall beside SQuAD EM/F1, closed-book
//! and gold-context comparisons, and clear errors. The tiny committed models check the
//! plumbing; SmolLM2 with MiniLM (when pulled) checks that the answer comes from the passages.

mod plumbing;

use plumbing::{fixture, tasklm as ok};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()
        .expect("run tasklm");
    assert!(!out.status.success(), "tasklm {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ARTICLES: [(&str, &str, &str, &str); 3] = [
    (
        "Volcano",
        "Mount Kelvara is a volcano whose last eruption was in 1821.",
        "When did Mount Kelvara last erupt?",
        "1821",
    ),
    (
        "Lake",
        "Lake Orvin is fed by the glacier Tessel and drains into the river Amund.",
        "Which glacier feeds Lake Orvin?",
        "Tessel",
    ),
    (
        "Bridge",
        "The Halvard bridge was designed by the engineer Ilse Marrow in 1903.",
        "Who designed the Halvard bridge?",
        "Ilse Marrow",
    ),
];

/// A SQuAD JSON file of three one-paragraph articles, one question each.
fn squad(dir: &Path) -> PathBuf {
    let data: Vec<Value> = ARTICLES
        .iter()
        .enumerate()
        .map(|(i, (title, context, q, a))| {
            let start = context.find(a).unwrap();
            let start = context[..start].chars().count();
            json!({"title": title, "paragraphs": [{"context": context, "qas": [
                {"id": format!("q{i}"), "question": q, "answers": [{"text": a, "answer_start": start}]}]}]})
        })
        .collect();
    let path = dir.join("squad.json");
    std::fs::write(&path, json!({ "data": data }).to_string()).unwrap();
    path
}

fn build(squad: &Path, index: &Path, model: &str) {
    ok(&[
        "index",
        "build",
        "--model",
        model,
        "--data",
        squad.to_str().unwrap(),
        "--out",
        index.to_str().unwrap(),
    ]);
}

#[test]
fn rag_cites_the_retrieved_passages_and_eval_reports_recall() {
    let dir = tempfile::tempdir().unwrap();
    let data = squad(dir.path());
    let index = dir.path().join("index");
    build(&data, &index, &fixture("tiny_encoder"));
    let (index_s, decoder) = (index.to_str().unwrap(), fixture("tiny_decoder"));

    // BM25 finds the paragraph by its rare words even with the random tiny encoder.
    let out = ok(&[
        "rag",
        "--index",
        index_s,
        "--model",
        &decoder,
        "--question",
        "Which glacier feeds Lake Orvin?",
        "--mode",
        "bm25",
        "--passages",
        "2",
        "--json",
        "--max-new-tokens",
        "4",
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let cites = v["citations"].as_array().unwrap();
    // BM25 hits only chunks sharing a word with the question: at most the two asked for.
    assert!((1..=2).contains(&cites.len()), "{v}");
    assert_eq!(cites[0]["doc_id"], "Lake/0");
    assert_eq!(cites[0]["n"], 1);
    assert_eq!(cites[0]["start"], 0);
    assert_eq!(cites[0]["end"], ARTICLES[1].1.chars().count());
    assert!(v["answer"].is_string(), "{v}");

    // Text output: the answer, then one line per citation.
    let text = ok(&[
        "rag",
        "--index",
        index_s,
        "--model",
        &decoder,
        "--question",
        "Who designed the Halvard bridge?",
        "--mode",
        "bm25",
        "--passages",
        "1",
        "--max-new-tokens",
        "2",
    ]);
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains("[1] Bridge/0 chars 0.."),
        "{text}"
    );

    // eval: recall@1 of the gold paragraph under BM25 is 1 on these questions.
    let report = ok(&[
        "eval",
        "--task",
        "rag",
        "--model",
        &decoder,
        "--data",
        data.to_str().unwrap(),
        "--index",
        index_s,
        "--mode",
        "bm25",
        "--passages",
        "1",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    let r: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(r["recall@1"], 1.0, "{r}");
    assert_eq!(r["n"], 3, "{r}");
    assert!(
        r["f1"].as_f64().is_some() && r["exact_match"].as_f64().is_some(),
        "{r}"
    );

    // Closed-book: no passages, so no recall.
    let report = ok(&[
        "eval",
        "--task",
        "rag",
        "--model",
        &decoder,
        "--data",
        data.to_str().unwrap(),
        "--context",
        "none",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    let r: Value = serde_json::from_str(report.trim()).unwrap();
    assert!(r.get("recall@3").is_none() && r["context"] == "none", "{r}");
}

#[test]
fn rag_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let decoder = fixture("tiny_decoder");
    let e = fails(&["rag", "--model", &decoder, "--question", "Why?"]);
    assert!(e.contains("--index"), "{e}");
    let missing = dir.path().join("no-index");
    let e = fails(&[
        "rag",
        "--model",
        &decoder,
        "--question",
        "Why?",
        "--index",
        missing.to_str().unwrap(),
    ]);
    assert!(e.contains("no-index"), "{e}");
    let e = fails(&[
        "rag",
        "--model",
        &decoder,
        "--question",
        "Why?",
        "--context",
        "none",
        "--prompt-template",
        "Tell me.",
    ]);
    assert!(e.contains("{question}"), "{e}");
    let e = fails(&[
        "rag",
        "--model",
        &decoder,
        "--question",
        "Why?",
        "--context",
        "somewhere",
    ]);
    assert!(e.contains("retrieved, none or gold"), "{e}");
    let e = fails(&[
        "train", "--task", "rag", "--model", &decoder, "--data", "x.json", "--out", "o",
    ]);
    assert!(e.contains("--task retrieval"), "{e}");
}

#[test]
fn smollm2_answers_from_the_passages_it_is_given() {
    let Some(gen) = tasklm_hub::testing::catalog_model("smollm2-135m-instruct").expect("catalog")
    else {
        return;
    };
    let Some(emb) = tasklm_hub::testing::catalog_model("all-minilm-l6-v2").expect("catalog") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = squad(dir.path());
    let index = dir.path().join("index");
    build(&data, &index, emb.to_str().unwrap());
    let gen = gen.to_str().unwrap();
    let args = |context: &str| -> Value {
        let out = ok(&[
            "eval",
            "--task",
            "rag",
            "--model",
            gen,
            "--data",
            data.to_str().unwrap(),
            "--index",
            index.to_str().unwrap(),
            "--passages",
            "1",
            "--context",
            context,
            "--json",
        ]);
        serde_json::from_str(out.trim()).unwrap()
    };
    // The answers are invented names and a year: closed-book cannot know them.
    let retrieved = args("retrieved");
    assert_eq!(retrieved["recall@1"], 1.0, "{retrieved}");
    let closed = args("none");
    assert!(
        retrieved["f1"].as_f64().unwrap() >= closed["f1"].as_f64().unwrap() + 30.0,
        "retrieved {retrieved} closed-book {closed}"
    );
    let out = ok(&[
        "rag",
        "--index",
        index.to_str().unwrap(),
        "--model",
        gen,
        "--question",
        "When did Mount Kelvara last erupt?",
        "--passages",
        "1",
        "--json",
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["answer"].as_str().unwrap().contains("1821"), "{v}");
    assert_eq!(v["citations"][0]["doc_id"], "Volcano/0", "{v}");
}

#[test]
fn rag_latency_reports_percentiles_per_question() {
    let dir = tempfile::tempdir().unwrap();
    let data = squad(dir.path());
    let index = dir.path().join("index");
    build(&data, &index, &fixture("tiny_encoder"));
    let questions = dir.path().join("q.jsonl");
    let lines: Vec<String> = ARTICLES
        .iter()
        .enumerate()
        .map(|(i, (_, _, q, _))| json!({"id": i, "question": q}).to_string())
        .collect();
    std::fs::write(&questions, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(["rag", "--index", index.to_str().unwrap(), "--model"])
        .arg(fixture("tiny_decoder"))
        .args(["--questions", questions.to_str().unwrap(), "--json"])
        .args(["--max-new-tokens", "2", "--batch-size", "1", "--latency"])
        .output()
        .expect("run tasklm");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("latency "))
        .unwrap_or_else(|| panic!("no latency line in {stderr}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["queries"], 3, "{v}");
    let ms = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        ms("retrieve_ms_p50") > 0.0 && ms("generate_ms_p50") > 0.0,
        "{v}"
    );
    assert!(ms("question_ms_p99") >= ms("question_ms_p50"), "{v}");
    assert!(ms("question_ms_p50") >= ms("retrieve_ms_p50"), "{v}");
}
