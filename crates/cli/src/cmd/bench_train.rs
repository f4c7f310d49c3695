//! `tasklm bench train`: tokens/s and peak memory of full fine-tuning updates on a fixed batch
//! (forward, backward over every position, clipping, AdamW), side by side with PyTorch.

use super::bench_figures::{append, Figure};
use super::bench_peer::{peer_name, peer_num, run_peer};
use super::bench_table::peak_rss_bytes;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Var};
use clap::Args;
use std::time::Instant;
use tasklm_data::Features;
use tasklm_hub::catalog::DEFAULT_MODEL;
use tasklm_hub::load_checkpoint;
use tasklm_train::{accumulate, trainable_decoder, AdamW, AdamWConfig, LmObjective};

const PEER_SCRIPT: &str = include_str!("../../../../scripts/peer/bench_train.py");

#[derive(Args)]
pub struct BenchTrainArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Tokens per row (every position is scored).
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Timed updates, after one warm-up update.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Also run the PyTorch peer (`scripts/peer/bench_train.py`) with this Python on the same
    /// batch, and print the ratio.
    #[arg(long)]
    pub peer_python: Option<String>,
    /// Also append the figures as JSON lines to FILE (what `bench all` reads).
    #[arg(long, hide = true, value_name = "FILE")]
    pub figures: Option<std::path::PathBuf>,
}

/// Deterministic token ids spread over the vocabulary (no special tokens below id 100).
fn batch_ids(rows: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..rows)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (100 + x % (vocab as u64 - 100)) as u32
                })
                .collect()
        })
        .collect()
}

pub fn run(a: BenchTrainArgs) -> Result<()> {
    if a.batch_size == 0 || a.seq_len < 2 || a.steps == 0 {
        bail!("--batch-size and --steps must be >= 1, --seq-len >= 2");
    }
    let source = tasklm_hub::resolve(&a.model, true)?;
    let ck = load_checkpoint(&source, DType::F32, &Device::Cpu)?;
    let vocab = ck.config.vocab_size;
    let ids = batch_ids(a.batch_size, a.seq_len, vocab);
    let (model, params) = trainable_decoder(ck.architecture, &ck.config, ck.tensors)?;
    let n_params: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    let train: Vec<Features> = ids
        .iter()
        .map(|r| Features::new(r.clone(), r.iter().map(|&t| i64::from(t)).collect()))
        .collect();
    let obj = LmObjective {
        model,
        params: params.clone(),
        train,
        eval: Vec::new(),
        pad_id: 0,
        eval_batch_size: a.batch_size,
        weights_file: "model.safetensors",
        files: Box::new(|_| Ok(())),
    };
    let mut opt = AdamW::new(params, AdamWConfig::default())?;
    let vars: Vec<Var> = opt.vars();
    let all: Vec<usize> = (0..a.batch_size).collect();
    let mut times = Vec::new();
    for step in 0..=a.steps {
        let t0 = Instant::now();
        let mut acc = accumulate(&obj, &vars, &[&all])?;
        let t1 = Instant::now();
        acc.grads.clip(1.0)?;
        let t2 = Instant::now();
        opt.step_with(&acc.grads, 1e-5)?;
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
        eprintln!(
            "{} {step}: loss {:.4}, forward+backward {:.2} s, clip {:.2} s, AdamW {:.2} s",
            if step == 0 { "warm-up" } else { "update" },
            acc.loss,
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64()
        );
    }
    let tokens = (a.batch_size * a.seq_len) as f64;
    let ours = tokens * times.len() as f64 / times.iter().sum::<f64>();
    let our_rss = peak_rss_bytes();
    let rss = our_rss.unwrap_or(0) as f64 / 1e9;
    let threads = super::bench::thread_count();
    println!(
        "model {} ({:.1}M params), batch {}x{}, AdamW, f32, {threads} threads, {} timed updates",
        a.model,
        n_params as f64 / 1e6,
        a.batch_size,
        a.seq_len,
        a.steps
    );
    println!("{:<10} {:>12} {:>14}", "", "tokens/s", "peak RSS GB");
    println!("{:<10} {ours:>12.1} {rss:>14.2}", "tasklm");
    let mut figure = Figure::new(
        "train",
        format!(
            "{} {}x{} full fine-tuning (forward, backward, AdamW), f32",
            a.model, a.batch_size, a.seq_len
        ),
        "tokens/s",
        ours,
    )
    .with_rss(our_rss, None);
    if let Some(py) = a.peer_python {
        let v = run_peer(
            &py,
            "train",
            PEER_SCRIPT,
            "--ids",
            &serde_json::to_string(&ids)?,
            &[
                ("--model", source.path().to_string_lossy().to_string()),
                ("--steps", a.steps.to_string()),
                ("--threads", threads.to_string()),
            ],
        )?;
        let theirs = peer_num(&v, "tokens_per_s")?;
        let their_rss_bytes = peer_num(&v, "peak_rss_bytes")?;
        let their_rss = their_rss_bytes / 1e9;
        println!("{:<10} {theirs:>12.1} {their_rss:>14.2}", "pytorch");
        println!(
            "{:<10} {:>11.2}x {:>13.2}x",
            "ratio",
            ours / theirs,
            rss / their_rss
        );
        figure = figure
            .with_peer(&peer_name(&v), theirs)
            .with_rss(our_rss, Some(their_rss_bytes as u64));
    }
    append(a.figures.as_deref(), &[figure])
}
