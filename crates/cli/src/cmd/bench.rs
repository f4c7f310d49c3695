use super::bench_figures::{append, Figure};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
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
    /// Sentence embeddings/s, side by side with sentence-transformers (`--peer-python`).
    Embed(super::bench_embed::BenchEmbedArgs),
    /// Every side-by-side figure (training, encoder, embeddings, generation against PyTorch
    /// and llama.cpp), each bench in its own process, printed as one table with the CPU.
    All(super::bench_all::BenchAllArgs),
    /// Load on a running server: requests/s, output tokens/s, time to first token and
    /// inter-token latency at each concurrency level.
    Serve(super::bench_serve::BenchServeArgs),
    /// Internal: measures one configuration in this process and prints a JSON line (`bench
    /// generate --peer llama.cpp` runs one per configuration, so peak RSS is its own).
    #[command(hide = true)]
    GenerateOne(GenerateOneArgs),
}

/// What `bench generate` runs side by side with tasklm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// PyTorch + transformers on the same checkpoint, f32 (the peer `--peer-python` alone runs).
    Pytorch,
    /// llama.cpp (llama-cpp-python) on the same GGUF: as stored (Q4_1), and requantised to F32
    /// and Q8_0.
    #[value(name = "llama.cpp")]
    LlamaCpp,
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
    /// The Python the peer runs in: with `--peer pytorch` (the default when only this is
    /// given) one with torch, transformers and gguf; with `--peer llama.cpp` one with
    /// llama-cpp-python 0.3.36.
    #[arg(long)]
    pub peer_python: Option<String>,
    /// The peer to run side by side on the same prompt ids.
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// With `--peer llama.cpp`: interleaved rounds, each running every configuration once
    /// (tasklm, then the peer); each row is the median over rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// With `--peer llama.cpp`: also write the table (rows, CPU, settings) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also append the figures as JSON lines to FILE (what `bench all` reads).
    #[arg(long, hide = true, value_name = "FILE")]
    pub figures: Option<PathBuf>,
}

#[derive(Args)]
pub struct GenerateOneArgs {
    /// A GGUF file.
    #[arg(long)]
    pub model: String,
    /// Run the weight matrices quantized, as stored.
    #[arg(long)]
    pub quantized: bool,
    /// The prompt, as token ids.
    #[arg(long, value_delimiter = ',', required = true)]
    pub prompt_ids: Vec<u32>,
    #[arg(long)]
    pub new_tokens: usize,
    #[arg(long)]
    pub runs: usize,
}

/// Median prefill and decode tokens/s over `runs` runs after one warm-up run, and the first
/// generated ids.
fn measure(
    m: &LoadedDecoder,
    ids: &[u32],
    new_tokens: usize,
    runs: usize,
) -> Result<(f64, f64, Vec<u32>)> {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(new_tokens)
    };
    let (mut prefill, mut decode, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let prompts = [ids.to_vec()];
        let g = generate(
            m.model.as_ref(),
            &m.tokenizer,
            &prompts,
            &params,
            &mut |_, _| {},
        )?;
        let t = g[0].timing;
        first = g[0].token_ids.iter().copied().take(8).collect();
        if run > 0 {
            prefill.push(ids.len() as f64 / t.prefill.as_secs_f64());
            decode.push((g[0].token_ids.len() - 1) as f64 / t.decode.as_secs_f64());
        }
    }
    Ok((median(&prefill)?, median(&decode)?, first))
}

/// `bench generate-one`: one configuration, printed as the JSON line the table reads.
fn generate_one(a: GenerateOneArgs) -> Result<()> {
    if a.runs == 0 || a.new_tokens < 2 || a.prompt_ids.is_empty() {
        bail!("--runs must be >= 1, --new-tokens >= 2, --prompt-ids not empty");
    }
    let opts = LoadOptions {
        quantized: a.quantized,
        ..LoadOptions::default()
    };
    let m = load_decoder_with(&a.model, opts, false)?;
    let (p, d, first) = measure(&m, &a.prompt_ids, a.new_tokens, a.runs)?;
    let line = serde_json::json!({
        "prefill_tokens_per_s": p,
        "decode_tokens_per_s": d,
        "peak_rss_bytes": super::bench_table::peak_rss_bytes(),
        "first_tokens": first,
    });
    println!("{line}");
    Ok(())
}

/// The benchmark's prompt: `n` ids of a fixed English text in `tok`'s vocabulary.
pub fn prompt_ids(tok: &tasklm_text::TextTokenizer, n: usize) -> Result<Vec<u32>> {
    let mut ids = tok.encode(&TEXT.repeat(n / 40 + 1), false)?;
    ids.truncate(n);
    Ok(ids)
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

/// The median of timed runs (at least one by the flags' checks).
pub fn median(v: &[f64]) -> Result<f64> {
    super::bench_table::median(v).ok_or_else(|| anyhow::anyhow!("no timed run to take a median of"))
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
        BenchCommand::Embed(a) => return super::bench_embed::run(a),
        BenchCommand::Serve(a) => return super::bench_serve::run(a),
        BenchCommand::All(a) => return super::bench_all::run(a),
        BenchCommand::GenerateOne(a) => return generate_one(a),
    };
    if a.runs == 0 || a.new_tokens < 2 || a.prompt_tokens == 0 {
        bail!("--runs must be >= 1, --new-tokens >= 2, --prompt-tokens >= 1");
    }
    match a.peer {
        Some(Peer::LlamaCpp) => return super::bench_llama::run(&a),
        Some(Peer::Pytorch) if a.peer_python.is_none() => {
            bail!("--peer pytorch needs --peer-python PY: a Python with torch, transformers, gguf")
        }
        _ => {}
    }
    if a.json.is_some() {
        bail!("--json writes the side-by-side table of --peer llama.cpp; add --peer llama.cpp");
    }
    let m = load_decoder(&a.model, true)?;
    let ids = prompt_ids(&m.tokenizer, a.prompt_tokens)?;
    let threads = thread_count();
    let (p, d, _) = measure(&m, &ids, a.new_tokens, a.runs)?;
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
        let (qp, qd, _) = measure(&q, &ids, a.new_tokens, a.runs)?;
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
        let name = super::bench_peer::peer_name(&v);
        let setting = format!(
            "{}, {} prompt tokens, {} new tokens",
            a.model,
            ids.len(),
            a.new_tokens
        );
        let fig = |phase: &str, ours: f64, theirs: f64| {
            Figure::new(
                "generate",
                format!("{setting}, {phase} f32"),
                "tokens/s",
                ours,
            )
            .with_peer(&name, theirs)
        };
        append(
            a.figures.as_deref(),
            &[fig("decode", d, pd), fig("prefill", p, pp)],
        )?;
    }
    Ok(())
}
