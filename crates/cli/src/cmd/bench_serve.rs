//! `tasklm bench serve`: load on a running `tasklm serve` (or any OpenAI-compatible server) on
//! loopback, at one or several concurrency levels.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use tasklm_serve::load_test::{self, LoadReport, LoadSpec};

/// Prompts the load generator cycles through.
const PROMPTS: &[&str] = &[
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle stays upright.",
    "List five uses for a paperclip.",
    "Describe the water cycle to a child.",
];

#[derive(Args)]
pub struct BenchServeArgs {
    /// The server, `host:port` (or `http://host:port`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub url: String,
    /// The model name to ask for.
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub api_key: Option<String>,
    /// Concurrent streams; several levels run one after the other (`1,8,32,64`).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub concurrency: Vec<usize>,
    /// Requests in all, per level (default: 4 per stream, at least 8).
    #[arg(long)]
    pub requests: Option<usize>,
    /// Tokens each request generates at most.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Also write the rows as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn print_row(r: &LoadReport) {
    let mut errors: Vec<String> = r.errors.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    if !errors.is_empty() {
        errors.push(format!("slowest {:.1} ms", r.refused_max_ms));
    }
    println!(
        "{:>6} {:>8} {:>5} {:>8.2} {:>10.1} {:>9.0} {:>9.0} {:>8.1} {:>8.1} {:>10.1}  {}",
        r.concurrency,
        r.requests,
        r.ok,
        r.requests_per_s,
        r.output_tokens_per_s,
        r.ttft_p50_ms,
        r.ttft_p99_ms,
        r.itl_p50_ms,
        r.itl_p99_ms,
        r.health_max_ms,
        if errors.is_empty() {
            "none".to_string()
        } else {
            errors.join(", ")
        }
    );
}

pub fn run(a: BenchServeArgs) -> Result<()> {
    let addr = a
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if a.concurrency.contains(&0) {
        bail!("--concurrency: every level must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    println!(
        "{:>6} {:>8} {:>5} {:>8} {:>10} {:>9} {:>9} {:>8} {:>8}  errors",
        "conc",
        "requests",
        "ok",
        "req/s",
        "out tok/s",
        "ttft p50",
        "ttft p99",
        "itl p50",
        "itl p99"
    );
    let mut rows = Vec::new();
    for &c in &a.concurrency {
        let spec = LoadSpec {
            addr: addr.clone(),
            model: a.model.clone(),
            api_key: a.api_key.clone(),
            concurrency: c,
            requests: a.requests.unwrap_or((4 * c).max(8)),
            max_tokens: a.max_tokens,
            prompts: PROMPTS.iter().map(|s| s.to_string()).collect(),
        };
        let r = runtime.block_on(load_test::run(spec));
        print_row(&r);
        rows.push(r);
    }
    println!(
        "(latencies in ms; ttft: time to first token; itl: between streamed chunks; health max: \
         the slowest GET /health, probed every 100 ms during the load)"
    );
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("--json {}", p.display()))?;
    }
    Ok(())
}
