//! `tasklm bench encoder`: training tokens/s (sequence classification: forward, backward,
//! clipping, AdamW) and inference sentences/s of an encoder on a fixed batch, side by side with
//! PyTorch/transformers (`scripts/peer/bench_encoder.py`) in the same run.

use super::bench::median;
use super::bench_figures::{append, Figure};
use super::bench_peer::{peer_name, peer_num, run_peer};
use super::bench_table::Spread;
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
    /// Rounds, each tasklm's updates and passes then the peer's (a fresh process); every figure
    /// is the median over the rounds, so that what else the machine does weighs on both sides.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Also run the PyTorch peer with this Python on the same batch, and print the ratios.
    #[arg(long)]
    pub peer_python: Option<String>,
    /// Also append the figures as JSON lines to FILE (what `bench all` reads).
    #[arg(long, hide = true, value_name = "FILE")]
    pub figures: Option<std::path::PathBuf>,
}

/// Untimed inference passes before the timed ones.
const INFER_WARMUP: usize = 2;

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

/// One round of tasklm's figures: inference sentences/s (median pass) and training tokens/s
/// (mean update, after a warm-up update).
struct Round {
    train: f64,
    infer: f64,
}

fn classifier(
    source: &tasklm_hub::ModelSource,
    seq_len: usize,
    labels: &[String],
) -> Result<EncoderClassifier> {
    let ck = load_encoder(source, &Device::Cpu)?;
    Ok(EncoderClassifier::new(
        ck,
        Some(labels.to_vec()),
        seq_len,
        tasklm_tasks::TaskKind::Classify,
        None,
    )?)
}

/// The median inference pass of `clf` over `pairs`, after [`INFER_WARMUP`] passes.
fn infer_pass_s(
    clf: &EncoderClassifier,
    pairs: &[(Vec<u32>, Vec<u32>)],
    passes: usize,
) -> Result<f64> {
    let mut times = Vec::with_capacity(passes);
    for pass in 0..passes + INFER_WARMUP {
        let t0 = Instant::now();
        clf.logits(pairs, false)?;
        if pass >= INFER_WARMUP {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    median(&times)
}

/// The mean time of `steps` updates (forward, backward, clipping, AdamW), after a warm-up one.
fn update_s(
    obj: &dyn tasklm_train::trainer::Objective,
    opt: &mut AdamW,
    batch: usize,
    steps: usize,
) -> Result<f64> {
    let vars: Vec<Var> = opt.vars();
    let all: Vec<usize> = (0..batch).collect();
    let mut total = 0.0;
    for step in 0..=steps {
        let t0 = Instant::now();
        let mut acc = accumulate(obj, &vars, &[&all])?;
        let t1 = Instant::now();
        acc.grads.clip(1.0)?;
        opt.step_with(&acc.grads, 1e-4)?;
        if step > 0 {
            total += t0.elapsed().as_secs_f64();
        }
        eprintln!(
            "{} {step}: loss {:.4}, forward+backward {:.3} s, clip+AdamW {:.3} s",
            if step == 0 { "warm-up" } else { "update" },
            acc.loss,
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
    }
    Ok(total / steps as f64)
}

/// `median (min-max)` of `v`.
fn spread(v: &[f64]) -> Result<String> {
    let s = Spread::of(v).ok_or_else(|| anyhow::anyhow!("no round to take a median of"))?;
    Ok(if v.len() < 2 {
        format!("{:.1}", s.median)
    } else {
        format!("{:.1} ({:.1}-{:.1})", s.median, s.min, s.max)
    })
}

pub fn run(a: BenchEncoderArgs) -> Result<()> {
    if a.batch_size == 0 || a.seq_len < 3 || a.steps == 0 || a.infer_passes == 0 || a.rounds == 0 {
        bail!("--batch-size, --steps, --infer-passes and --rounds must be >= 1, --seq-len >= 3");
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
    drop(ck);
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        rows.iter().map(|r| (r.clone(), vec![0; r.len()])).collect();
    let labels_2 = vec!["0".to_string(), "1".to_string()];
    // One classifier answers (its weights untouched), another trains.
    let infer_clf = classifier(&source, a.seq_len, &labels_2)?;
    let train_clf = classifier(&source, a.seq_len, &labels_2)?;
    let params = train_clf.params();
    let n_params: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    let obj = objective_for_rows(train_clf, pairs.clone(), labels.clone());
    let mut opt = AdamW::new(params, AdamWConfig::default())?;
    let threads = super::bench::thread_count();
    let peer_rows = serde_json::json!({"ids": rows, "labels": labels}).to_string();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut their_rss, mut name) = (0f64, String::new());
    for round in 1..=a.rounds {
        let infer = a.batch_size as f64 / infer_pass_s(&infer_clf, &pairs, a.infer_passes)?;
        let train = (a.batch_size * a.seq_len) as f64
            / update_s(obj.as_ref(), &mut opt, a.batch_size, a.steps)?;
        ours.push(Round { train, infer });
        let Some(py) = &a.peer_python else {
            continue;
        };
        let v = run_peer(
            py,
            "encoder",
            PEER_SCRIPT,
            "--rows",
            &peer_rows,
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
        their_rss = their_rss.max(num("peak_rss_bytes")?);
        name = peer_name(&v);
        eprintln!(
            "round {round}/{}: training tasklm {train:.1}, pytorch {t_train:.1} tokens/s | \
             inference tasklm {infer:.1}, pytorch {t_infer:.1} sentences/s",
            a.rounds
        );
        theirs.push(Round {
            train: t_train,
            infer: t_infer,
        });
    }
    let col = |v: &[Round], f: fn(&Round) -> f64| -> Vec<f64> { v.iter().map(f).collect() };

    let (our_train, our_infer) = (col(&ours, |r| r.train), col(&ours, |r| r.infer));
    let our_rss = super::bench_table::peak_rss_bytes();
    let rss = our_rss.unwrap_or(0) as f64 / 1e9;
    println!(
        "model {} ({:.1}M params), batch {}x{}, f32, {threads} threads, {} timed updates \
         (mean), {} inference passes (median); the median of {} rounds (min-max)",
        a.model,
        n_params as f64 / 1e6,
        a.batch_size,
        a.seq_len,
        a.steps,
        a.infer_passes,
        a.rounds
    );
    println!(
        "{:<10} {:>26} {:>26} {:>12}",
        "", "train tokens/s", "infer sentences/s", "peak RSS GB"
    );
    println!(
        "{:<10} {:>26} {:>26} {rss:>12.2}",
        "tasklm",
        spread(&our_train)?,
        spread(&our_infer)?
    );
    let (ours_train, ours_infer) = (median(&our_train)?, median(&our_infer)?);
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
    if theirs.is_empty() {
        return append(
            a.figures.as_deref(),
            &[train_fig.with_rss(our_rss, None), infer_fig],
        );
    }
    let (their_train, their_infer) = (col(&theirs, |r| r.train), col(&theirs, |r| r.infer));
    let (t_train, t_infer) = (median(&their_train)?, median(&their_infer)?);
    let t_rss = their_rss / 1e9;
    println!(
        "{:<10} {:>26} {:>26} {t_rss:>12.2}",
        "pytorch",
        spread(&their_train)?,
        spread(&their_infer)?
    );
    // Each round's ratio, so that a ratio's spread shows beside the ratio of the medians.
    let ratios =
        |o: &[f64], t: &[f64]| -> Vec<f64> { o.iter().zip(t).map(|(o, t)| o / t).collect() };
    let (r_train, r_infer) = (
        ratios(&our_train, &their_train),
        ratios(&our_infer, &their_infer),
    );
    let range = |v: &[f64]| {
        Spread::of(v)
            .map(|s| format!("({:.2}-{:.2})", s.min, s.max))
            .unwrap_or_default()
    };
    println!(
        "{:<10} {:>26} {:>26} {:>11.2}x",
        "ratio",
        format!("{:.2}x {}", ours_train / t_train, range(&r_train)),
        format!("{:.2}x {}", ours_infer / t_infer, range(&r_infer)),
        rss / t_rss
    );
    let their_rss = Some(their_rss as u64);
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
