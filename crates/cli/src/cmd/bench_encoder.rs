//! `tasklm bench encoder`: training tokens/s (sequence classification: forward, backward,
//! clipping, AdamW) and inference sentences/s of an encoder on a fixed batch, side by side with
//! PyTorch/transformers (`scripts/peer/bench_encoder.py`) in the same run.

use super::bench_figures::{append, Figure};
use super::bench_peer::{peer_name, peer_num, run_peer};
use anyhow::{bail, Result};
use candle_core::{Device, Var};
use clap::Args;
use std::time::Instant;
use tasklm_hub::load_encoder;
use tasklm_tasks::classify::encoder::{objective_for_rows, EncoderClassifier};
use tasklm_train::{accumulate, AdamW, AdamWConfig};

const PEER_SCRIPT: &str = include_str!("../../../../scripts/peer/bench_encoder.py");

#[derive(Args)]
pub struct BenchEncoderArgs {
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub model: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Tokens per row, `[CLS]` and `[SEP]` included.
    #[arg(long, default_value_t = 64)]
    pub seq_len: usize,
    /// Timed training updates, after one warm-up (their mean time is the figure).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Timed inference passes, after two warm-up passes; the median pass is the figure, on
    /// both sides (a pass of 32 rows takes a fraction of a second, so a handful of them
    /// swings with whatever else the machine does).
    #[arg(long, default_value_t = 30)]
    pub infer_passes: usize,
    /// Also run the PyTorch peer with this Python on the same batch, and print the ratios.
    #[arg(long)]
    pub peer_python: Option<String>,
    /// Also append the figures as JSON lines to FILE (what `bench all` reads).
    #[arg(long, hide = true, value_name = "FILE")]
    pub figures: Option<std::path::PathBuf>,
}

/// Untimed inference passes before the timed ones.
const INFER_WARMUP: usize = 2;

/// The median of `v` (the mean of the middle two for an even count); `v` is not empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Deterministic rows `[CLS] w... [SEP]` over the vocabulary (ids >= 1000 avoid specials) and
/// alternating labels.
fn batch(a: &BenchEncoderArgs, cls: u32, sep: u32, vocab: usize) -> (Vec<Vec<u32>>, Vec<u32>) {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let rows = (0..a.batch_size)
        .map(|_| {
            let mut r = vec![cls];
            r.extend((0..a.seq_len - 2).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (1000 + x % (vocab as u64 - 1000)) as u32
            }));
            r.push(sep);
            r
        })
        .collect();
    let labels = (0..a.batch_size).map(|i| (i % 2) as u32).collect();
    (rows, labels)
}

pub fn run(a: BenchEncoderArgs) -> Result<()> {
    if a.batch_size == 0 || a.seq_len < 3 || a.steps == 0 || a.infer_passes == 0 {
        bail!("--batch-size, --steps and --infer-passes must be >= 1, --seq-len >= 3");
    }
    let source = tasklm_hub::resolve(&a.model, true)?;
    let ck = load_encoder(&source, &Device::Cpu)?;
    if ck.config.vocab_size <= 1000 {
        bail!(
            "{}: the benchmark draws ids above 1000; the vocabulary is smaller",
            a.model
        );
    }
    let (rows, labels) = batch(&a, ck.cls_id, ck.sep_id, ck.config.vocab_size);
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        rows.iter().map(|r| (r.clone(), vec![0; r.len()])).collect();
    let labels_2 = vec!["0".to_string(), "1".to_string()];
    let clf = EncoderClassifier::new(
        ck,
        Some(labels_2.clone()),
        a.seq_len,
        tasklm_tasks::TaskKind::Classify,
        None,
    )?;
    let params = clf.params();
    let n_params: usize = params.iter().map(|(_, v)| v.elem_count()).sum();

    // Inference first, on the untouched weights.
    let mut infer = Vec::new();
    for pass in 0..a.infer_passes + INFER_WARMUP {
        let t0 = Instant::now();
        clf.logits(&pairs, false)?;
        if pass >= INFER_WARMUP {
            infer.push(t0.elapsed().as_secs_f64());
        }
    }
    let obj = objective_for_rows(clf, pairs, labels.clone());
    let mut opt = AdamW::new(params, AdamWConfig::default())?;
    let vars: Vec<Var> = opt.vars();
    let all: Vec<usize> = (0..a.batch_size).collect();
    let mut train = Vec::new();
    for step in 0..=a.steps {
        let t0 = Instant::now();
        let mut acc = accumulate(obj.as_ref(), &vars, &[&all])?;
        let t1 = Instant::now();
        acc.grads.clip(1.0)?;
        opt.step_with(&acc.grads, 1e-4)?;
        if step > 0 {
            train.push(t0.elapsed().as_secs_f64());
        }
        eprintln!(
            "{} {step}: loss {:.4}, forward+backward {:.3} s, clip+AdamW {:.3} s",
            if step == 0 { "warm-up" } else { "update" },
            acc.loss,
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let tokens = (a.batch_size * a.seq_len) as f64;
    let ours_train = tokens / mean(&train);
    let ours_infer = a.batch_size as f64 / median(&mut infer);
    let our_rss = super::bench_table::peak_rss_bytes();
    let rss = our_rss.unwrap_or(0) as f64 / 1e9;
    let threads = super::bench::thread_count();
    println!(
        "model {} ({:.1}M params), batch {}x{}, f32, {threads} threads, {} timed updates \
         (mean), {} inference passes (median)",
        a.model,
        n_params as f64 / 1e6,
        a.batch_size,
        a.seq_len,
        a.steps,
        a.infer_passes
    );
    println!(
        "{:<10} {:>16} {:>18} {:>14}",
        "", "train tokens/s", "infer sentences/s", "peak RSS GB"
    );
    println!(
        "{:<10} {ours_train:>16.1} {ours_infer:>18.1} {rss:>14.2}",
        "tasklm"
    );
    let setting = format!("{} {}x{}", a.model, a.batch_size, a.seq_len);
    let train_fig = Figure::new(
        "encoder",
        format!("{setting} classification training, f32"),
        "tokens/s",
        ours_train,
    );
    let infer_fig = Figure::new(
        "encoder",
        format!("{setting} classification inference, f32"),
        "sentences/s",
        ours_infer,
    );
    let Some(py) = a.peer_python else {
        return append(
            a.figures.as_deref(),
            &[train_fig.with_rss(our_rss, None), infer_fig],
        );
    };
    let v = run_peer(
        &py,
        "encoder",
        PEER_SCRIPT,
        "--rows",
        &serde_json::json!({"ids": rows, "labels": labels}).to_string(),
        &[
            ("--model", source.path().to_string_lossy().to_string()),
            ("--steps", a.steps.to_string()),
            ("--infer-passes", a.infer_passes.to_string()),
            ("--threads", threads.to_string()),
            ("--labels", labels_2.len().to_string()),
        ],
    )?;
    let num = |k: &str| peer_num(&v, k);
    let (t_train, t_infer) = (num("train_tokens_per_s")?, num("infer_sentences_per_s")?);
    let t_rss_bytes = num("peak_rss_bytes")?;
    let t_rss = t_rss_bytes / 1e9;
    println!(
        "{:<10} {t_train:>16.1} {t_infer:>18.1} {t_rss:>14.2}",
        "pytorch"
    );
    println!(
        "{:<10} {:>15.2}x {:>17.2}x {:>13.2}x",
        "ratio",
        ours_train / t_train,
        ours_infer / t_infer,
        rss / t_rss
    );
    let name = peer_name(&v);
    let their_rss = Some(t_rss_bytes as u64);
    append(
        a.figures.as_deref(),
        &[
            train_fig
                .with_peer(&name, t_train)
                .with_rss(our_rss, their_rss),
            infer_fig.with_peer(&name, t_infer),
        ],
    )
}
