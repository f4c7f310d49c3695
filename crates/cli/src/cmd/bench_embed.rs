//! `tasklm bench embed`: sentences/s of `tasklm embed`'s path (tokenizing, batches sorted by
//! length, the encoder, pooling, normalisation) on a fixed list of sentences, side by side with
//! sentence-transformers' `encode` on PyTorch (`scripts/peer/bench_embed.py`) in the same run.

use super::bench_figures::{append, Figure};
use super::bench_peer::{peer_num, run_peer};
use anyhow::{bail, Result};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;
use tasklm_hub::Embedder;

const PEER_SCRIPT: &str = include_str!("../../../../scripts/peer/bench_embed.py");

/// Words the synthetic sentences are drawn from.
const WORDS: &[&str] = &[
    "the",
    "model",
    "reads",
    "a",
    "question",
    "about",
    "history",
    "and",
    "answers",
    "with",
    "passage",
    "from",
    "index",
    "city",
    "river",
    "built",
    "century",
    "people",
    "language",
    "first",
    "world",
    "war",
    "university",
    "music",
    "church",
    "government",
    "known",
    "large",
    "small",
    "during",
    "after",
    "before",
    "north",
    "south",
    "water",
    "light",
    "school",
    "team",
    "game",
    "science",
    "which",
    "where",
    "when",
    "why",
    "how",
    "many",
    "several",
    "often",
    "never",
];

#[derive(Args)]
pub struct BenchEmbedArgs {
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub model: String,
    /// JSONL `{"text"}` to embed [default: `--sentences` synthetic sentences].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Synthetic sentences, each of 8 to `--words` words.
    #[arg(long, default_value_t = 512)]
    pub sentences: usize,
    #[arg(long, default_value_t = 32)]
    pub words: usize,
    #[arg(long, default_value_t = tasklm_hub::embed::DEFAULT_BATCH)]
    pub batch_size: usize,
    /// Timed passes over all sentences, after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also run sentence-transformers with this Python on the same sentences, and print the
    /// ratio.
    #[arg(long)]
    pub peer_python: Option<String>,
    /// Also append the figures as JSON lines to FILE (what `bench all` reads).
    #[arg(long, hide = true, value_name = "FILE")]
    pub figures: Option<std::path::PathBuf>,
}

fn synthetic(n: usize, max_words: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    (0..n)
        .map(|_| {
            let len = 8 + next() % (max_words.max(8) - 7);
            let words: Vec<&str> = (0..len).map(|_| WORDS[next() % WORDS.len()]).collect();
            words.join(" ")
        })
        .collect()
}

fn texts(a: &BenchEmbedArgs) -> Result<Vec<String>> {
    let Some(path) = &a.input else {
        return Ok(synthetic(a.sentences, a.words));
    };
    let mut out = Vec::new();
    super::input::for_each_record(Some(path), |v, line, name| {
        let Some(t) = v.get("text").and_then(Value::as_str) else {
            bail!("{name}:{line}: expected an object with a string \"text\"");
        };
        out.push(t.to_string());
        Ok(())
    })?;
    Ok(out)
}

pub fn run(a: BenchEmbedArgs) -> Result<()> {
    if a.batch_size == 0 || a.runs == 0 {
        bail!("--batch-size and --runs must be at least 1");
    }
    let texts = texts(&a)?;
    if texts.is_empty() {
        bail!("no sentences to embed");
    }
    let source = tasklm_hub::resolve(&a.model, true)?;
    let embedder = Embedder::load(&source)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut times = Vec::new();
    for run in 0..=a.runs {
        let t0 = Instant::now();
        embedder.embed_texts(&refs, a.batch_size)?;
        if run > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let ours = texts.len() as f64 / super::bench::median(&times)?;
    let our_rss = super::bench_table::peak_rss_bytes();
    let rss = our_rss.unwrap_or(0) as f64 / 1e9;
    let threads = super::bench::thread_count();
    println!(
        "model {}, {} sentences, batch {}, f32, {threads} threads, median of {} runs",
        a.model,
        texts.len(),
        a.batch_size,
        a.runs
    );
    println!("{:<28} {:>12} {:>12}", "", "sentences/s", "peak RSS GB");
    println!("{:<28} {ours:>12.1} {rss:>12.2}", "tasklm");
    let figure = Figure::new(
        "embed",
        format!(
            "{} sentence embeddings, {} sentences, batch {}, f32",
            a.model,
            texts.len(),
            a.batch_size
        ),
        "sentences/s",
        ours,
    )
    .with_rss(our_rss, None);
    let Some(py) = a.peer_python else {
        return append(a.figures.as_deref(), &[figure]);
    };
    let v = run_peer(
        &py,
        "embed",
        PEER_SCRIPT,
        "--texts",
        &serde_json::to_string(&texts)?,
        &[
            ("--model", source.path().to_string_lossy().to_string()),
            ("--batch-size", a.batch_size.to_string()),
            ("--runs", a.runs.to_string()),
            ("--threads", threads.to_string()),
        ],
    )?;
    let theirs = peer_num(&v, "sentences_per_s")?;
    let their_rss_bytes = peer_num(&v, "peak_rss_bytes")?;
    let their_rss = their_rss_bytes / 1e9;
    let name = format!(
        "sentence-transformers {}",
        v["sentence_transformers"].as_str().unwrap_or("?")
    );
    println!("{name:<28} {theirs:>12.1} {their_rss:>12.2}");
    println!(
        "{:<28} {:>11.2}x {:>11.2}x",
        "ratio",
        ours / theirs,
        rss / their_rss
    );
    let figure = figure
        .with_peer(&name, theirs)
        .with_rss(our_rss, Some(their_rss_bytes as u64));
    append(a.figures.as_deref(), &[figure])
}
