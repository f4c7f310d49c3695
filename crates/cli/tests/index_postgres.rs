//! `tasklm index` against a PostgreSQL store as a user runs it (`--store URL`, or the URL as
//! INDEX): the same JSON as an index directory (exact dense hits equal), add, delete, stats, a
//! build killed with SIGKILL leaving the previous contents, and an unreachable server named
//! without its password. Needs TASKLM_TEST_POSTGRES (scripts/ci/postgres.sh); skips without it,
//! fails under TASKLM_REQUIRE_MODELS=1.

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tasklm_rag::pg::{self, PgLocation};

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
        let doc = serde_json::json!({"id": format!("{prefix}-{i}"), "text": text});
        writeln!(f, "{doc}").unwrap();
    }
}

/// The test server with index `name` (emptied), or None to skip.
fn store(name: &str) -> Option<String> {
    let url = pg::testing::test_server().unwrap()?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}index=cli_{name}_{}", std::process::id());
    pg::drop_index(&PgLocation::parse(&url).unwrap()).unwrap();
    Some(url)
}

fn stats(index: &str) -> Value {
    serde_json::from_str(&ok(&["index", "stats", index])).unwrap()
}

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let url = "postgres://me:pw-s3cret@127.0.0.1:1/db?connect_timeout=5";
    for args in [
        vec!["index", "search", url, "--query", "x", "--mode", "bm25"],
        vec!["index", "stats", "--store", url],
    ] {
        let out = tasklm(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("postgres://me:***@127.0.0.1:1/db") && !stderr.contains("pw-s3cret"),
            "{stderr}"
        );
    }
    let out = tasklm(&["index", "stats", "--store", "/tmp/not-a-url"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("postgres://"),
        "{stderr}"
    );
}

#[test]
fn the_same_commands_and_json_as_an_index_directory() {
    let Some(url) = store("same") else { return };
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    write_docs(&docs, 40, "doc");
    let (docs_s, model) = (docs.to_str().unwrap(), tiny());
    let embedded = dir.path().join("index");
    let embedded = embedded.to_str().unwrap();
    ok(&[
        "index", "build", "--model", &model, "--data", docs_s, "--out", embedded,
    ]);
    let built: Value = serde_json::from_str(&ok(&[
        "index", "build", "--model", &model, "--data", docs_s, "--store", &url,
    ]))
    .unwrap();
    assert_eq!(
        (built["version"].as_u64(), built["documents"].as_u64()),
        (Some(1), Some(40))
    );
    let s = stats(&url);
    assert_eq!(s["chunks"], stats(embedded)["chunks"]);
    assert_eq!(s["store"], "postgres");
    assert!(!s["index"].as_str().unwrap().contains("tasklm-ci"));
    let s2: Value = serde_json::from_str(&ok(&["index", "stats", "--store", &url])).unwrap();
    assert_eq!(s2["chunks"], s["chunks"]);

    let queries = dir.path().join("queries.jsonl");
    std::fs::write(
        &queries,
        "{\"id\": \"q1\", \"query\": \"river 5\"}\n{\"id\": 2, \"query\": \"hill 7\"}\n{\"id\": 3, \"query\": \"document number 12\"}\n",
    )
    .unwrap();
    let q = queries.to_str().unwrap();
    let search = |index: &str, mode: &str, extra: &[&str]| {
        let mut args = vec![
            "index",
            "search",
            index,
            "--queries",
            q,
            "-k",
            "6",
            "--mode",
            mode,
        ];
        args.extend_from_slice(extra);
        json_lines(&ok(&args))
    };
    // Exact dense search: the same hits, scores and rows as the embedded index.
    assert_eq!(search(&url, "dense", &[]), search(embedded, "dense", &[]));
    for mode in ["bm25", "hybrid"] {
        let lines = search(&url, mode, &[]);
        assert_eq!(lines.len(), 3, "{mode}");
        assert_eq!(lines[0]["id"], "q1");
        for l in &lines {
            let hits = l["hits"].as_array().unwrap();
            assert!(!hits.is_empty(), "{mode}: {l}");
            for h in hits {
                assert!(h["doc_id"].as_str().unwrap().starts_with("doc-"));
                assert!(h["end"].as_u64() > h["start"].as_u64());
                assert!(h["score"].is_number() && h["text"].is_string());
            }
        }
    }
    let bm25 = search(&url, "bm25", &[]);
    assert_eq!(bm25[2]["hits"][0]["doc_id"], "doc-12", "{}", bm25[2]);
    let near = search(&url, "dense", &["--approximate", "--ef-search", "40"]);
    assert_eq!(near.len(), 3);
    let one = json_lines(&ok(&[
        "index", "search", &url, "--query", "river 5", "-k", "2",
    ]));
    assert_eq!(
        (one[0]["query"].as_str(), one[0]["mode"].as_str()),
        (Some("river 5"), Some("hybrid"))
    );
    assert_eq!(one[0]["hits"].as_array().unwrap().len(), 2);

    let more = dir.path().join("more.jsonl");
    write_docs(&more, 2, "more");
    let added: Value = serde_json::from_str(&ok(&[
        "index",
        "add",
        "--store",
        &url,
        "--data",
        more.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(
        (added["version"].as_u64(), added["documents"].as_u64()),
        (Some(2), Some(42))
    );
    let deleted: Value =
        serde_json::from_str(&ok(&["index", "delete", &url, "--id", "doc-3,more-1"])).unwrap();
    assert_eq!(
        (deleted["version"].as_u64(), deleted["documents"].as_u64()),
        (Some(3), Some(40))
    );
    let out = tasklm(&["index", "delete", &url, "--id", "doc-3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("doc-3"),
        "{stderr}"
    );
    assert_eq!(stats(&url)["version"], 3);
    pg::drop_index(&PgLocation::parse(&url).unwrap()).unwrap();
}

#[test]
fn sigkill_mid_build_leaves_the_previous_contents() {
    let Some(url) = store("killed") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = (dir.path().join("small.jsonl"), dir.path().join("big.jsonl"));
    write_docs(&small, 3, "small");
    write_docs(&big, 20_000, "big");
    let model = tiny();
    ok(&[
        "index",
        "build",
        "--model",
        &model,
        "--data",
        small.to_str().unwrap(),
        "--store",
        &url,
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args([
            "index",
            "build",
            "--model",
            &model,
            "--data",
            big.to_str().unwrap(),
        ])
        .args(["--store", &url, "--batch-size", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the server has seen it insert chunks into the table being built.
    let mut watch =
        postgres::Client::connect(&url[..url.find('?').unwrap_or(url.len())], postgres::NoTls)
            .unwrap();
    let t0 = Instant::now();
    let mut killed = false;
    while t0.elapsed() < Duration::from_secs(120) && child.try_wait().unwrap().is_none() {
        let inserting = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO tasklm_chunks__cli_killed_%_build%'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0);
        if inserting > 0 {
            std::thread::sleep(Duration::from_millis(200));
            child.kill().unwrap(); // SIGKILL on Unix
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait().unwrap();
    assert!(
        killed,
        "the build finished (or never inserted) before it could be killed"
    );
    let s = stats(&url);
    assert_eq!(
        (s["version"].as_u64(), s["documents"].as_u64()),
        (Some(1), Some(3))
    );
    let out = json_lines(&ok(&[
        "index",
        "search",
        &url,
        "--query",
        "small document number 2",
        "-k",
        "3",
        "--mode",
        "bm25",
    ]));
    assert_eq!(out[0]["hits"][0]["doc_id"], "small-2");
    // The next build succeeds (the killed one's transaction was rolled back).
    let more = dir.path().join("more.jsonl");
    write_docs(&more, 2, "more");
    ok(&[
        "index",
        "build",
        "--model",
        &model,
        "--data",
        more.to_str().unwrap(),
        "--store",
        &url,
    ]);
    let s = stats(&url);
    assert_eq!(
        (s["version"].as_u64(), s["documents"].as_u64()),
        (Some(2), Some(2))
    );
    pg::drop_index(&PgLocation::parse(&url).unwrap()).unwrap();
}

#[test]
fn rag_retrieves_from_a_postgres_store() {
    let Some(url) = store("rag") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let squad = dir.path().join("squad.json");
    let articles = [
        (
            "Lake",
            "Lake Orvin is fed by the glacier Tessel.",
            "Which glacier feeds Lake Orvin?",
            "Tessel",
        ),
        (
            "Bridge",
            "The Halvard bridge was designed by Ilse Marrow.",
            "Who designed the Halvard bridge?",
            "Ilse Marrow",
        ),
    ];
    let data: Vec<Value> = articles
        .iter()
        .enumerate()
        .map(|(i, (title, context, q, a))| {
            serde_json::json!({"title": title, "paragraphs": [{"context": context, "qas": [{"id": format!("q{i}"),
                "question": q, "answers": [{"text": a, "answer_start": context.find(a).unwrap()}]}]}]})
        })
        .collect();
    std::fs::write(&squad, serde_json::json!({ "data": data }).to_string()).unwrap();
    let squad = squad.to_str().unwrap();
    ok(&[
        "index",
        "build",
        "--model",
        &tiny(),
        "--data",
        squad,
        "--store",
        &url,
    ]);
    let decoder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tiny_decoder")
        .display()
        .to_string();
    let report = ok(&[
        "eval",
        "--task",
        "rag",
        "--model",
        &decoder,
        "--data",
        squad,
        "--index",
        &url,
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
    let out = ok(&[
        "rag",
        "--index",
        &url,
        "--model",
        &decoder,
        "--question",
        "Which glacier feeds Lake Orvin?",
        "--mode",
        "bm25",
        "--passages",
        "1",
        "--max-new-tokens",
        "2",
        "--json",
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["citations"][0]["doc_id"], "Lake/0", "{v}");
    pg::drop_index(&PgLocation::parse(&url).unwrap()).unwrap();
}
