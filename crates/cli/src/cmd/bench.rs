use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::process::Command;
use tasklm_generate::{generate, SamplingParams};
use tasklm_hub::catalog::DEFAULT_MODEL;
use tasklm_hub::{load_decoder, load_decoder_with, LoadOptions, LoadedDecoder, ModelSource};

/// The peer's measurement, kept in the repository and embedded so the binary can run it.
const PEER_SCRIPT: &str = include_str!("../../../../scripts/peer/bench_generate.py");

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prompt and decode tokens/s of the generation loop (median of runs).
    Generate(BenchGenerateArgs),
    /// Training tokens/s and peak memory of full fine-tuning updates on a fixed batch.
    Train(super::bench_train::BenchTrainArgs),
    /// Encoder classification: training tokens/s and inference sentences/s on a fixed batch.
    Encoder(super::bench_encoder::BenchEncoderArgs),
}

#[derive(Args)]
pub struct BenchGenerateArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also run the PyTorch/transformers peer with this Python (needs torch, transformers,
    /// gguf) on the same prompt, and print the ratio.
    #[arg(long)]
    pub peer_python: Option<String>,
}

/// Median prefill and decode tokens/s over `a.runs` runs after one warm-up run.
fn measure(m: &LoadedDecoder, ids: &[u32], a: &BenchGenerateArgs) -> Result<(f64, f64)> {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(a.new_tokens)
    };
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for run in 0..=a.runs {
        let prompts = [ids.to_vec()];
        let g = generate(
            m.model.as_ref(),
            &m.tokenizer,
            &prompts,
            &params,
            &mut |_, _| {},
        )?;
        let t = g[0].timing;
        if run > 0 {
            prefill.push(ids.len() as f64 / t.prefill.as_secs_f64());
            decode.push((g[0].token_ids.len() - 1) as f64 / t.decode.as_secs_f64());
        }
    }
    Ok((median(prefill), median(decode)))
}

/// Threads tensor math runs on (`--threads`, else all cores).
pub fn thread_count() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

const TEXT: &str = "The history of natural language processing generally started in the 1950s, \
although work can be found from earlier periods. In 1950, Alan Turing published an article \
titled Computing Machinery and Intelligence which proposed what is now called the Turing test \
as a criterion of intelligence. ";

pub fn run(cmd: BenchCommand) -> Result<()> {
    let a = match cmd {
        BenchCommand::Generate(a) => a,
        BenchCommand::Train(a) => return super::bench_train::run(a),
        BenchCommand::Encoder(a) => return super::bench_encoder::run(a),
    };
    if a.runs == 0 || a.new_tokens < 2 || a.prompt_tokens == 0 {
        bail!("--runs must be >= 1, --new-tokens >= 2, --prompt-tokens >= 1");
    }
    let m = load_decoder(&a.model, true)?;
    let text = TEXT.repeat(a.prompt_tokens / 40 + 1);
    let mut ids = m.tokenizer.encode(&text, false)?;
    ids.truncate(a.prompt_tokens);
    let threads = thread_count();
    let (p, d) = measure(&m, &ids, &a)?;
    println!(
        "model {} | {} threads | {} prompt tokens, {} new tokens, median of {} runs",
        a.model,
        threads,
        ids.len(),
        a.new_tokens,
        a.runs
    );
    println!("{:<22} {:>16} {:>16}", "", "prefill tok/s", "decode tok/s");
    println!("{:<22} {:>16.1} {:>16.1}", "tasklm (f32)", p, d);
    let mut quantized = None;
    if matches!(m.source, ModelSource::Gguf(_)) {
        let opts = LoadOptions {
            quantized: true,
            ..LoadOptions::default()
        };
        let q = load_decoder_with(m.source.path().to_str().context("model path")?, opts, false)?;
        let (qp, qd) = measure(&q, &ids, &a)?;
        println!("{:<22} {:>16.1} {:>16.1}", "tasklm (quantized)", qp, qd);
        quantized = Some((qp, qd));
    }
    if let Some(py) = a.peer_python {
        let script = std::env::temp_dir().join(format!("tasklm-peer-{}.py", std::process::id()));
        std::fs::write(&script, PEER_SCRIPT)?;
        let ids_arg = ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let out = Command::new(&py)
            .arg(&script)
            .args(["--model", m.source.path().to_str().context("model path")?])
            .args(["--prompt-ids", &ids_arg])
            .args(["--new-tokens", &a.new_tokens.to_string()])
            .args(["--runs", &a.runs.to_string()])
            .args(["--threads", &threads.to_string()])
            .output()
            .with_context(|| format!("running the peer with `{py}`"))?;
        let _ = std::fs::remove_file(&script);
        if !out.status.success() {
            bail!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().context("peer printed nothing")?;
        let v: serde_json::Value = serde_json::from_str(line).context("peer output")?;
        let pp = v["prefill_tokens_per_s"].as_f64().context("peer prefill")?;
        let pd = v["decode_tokens_per_s"].as_f64().context("peer decode")?;
        println!("{:<22} {:>16.1} {:>16.1}", "pytorch (f32)", pp, pd);
        let ratio =
            |name: &str, a: f64, b: f64| println!("{name:<24} {:>13.2}x {:>15.2}x", a / pp, b / pd);
        ratio("ratio f32/pytorch", p, d);
        if let Some((qp, qd)) = quantized {
            ratio("ratio quantized/pytorch", qp, qd);
        }
    }
    Ok(())
}
