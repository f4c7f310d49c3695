//! `tasklm`: fine-tune, evaluate and serve transformers, in one binary.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tasklm",
    version,
    about = "Fine-tune, evaluate and serve transformers for every classic LLM task"
)]
struct Cli {
    /// Worker threads for tensor math (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a catalog model into the local cache ($TASKLM_HOME, default ~/.cache/tasklm).
    Pull(cmd::pull::PullArgs),
    /// List the catalog models and whether each is cached.
    List,
    /// Generate a continuation of a prompt, streaming to stdout.
    Generate(cmd::generate::GenerateArgs),
    /// Talk with a model, turn by turn (or answer a conversation file with --input).
    Chat(cmd::chat::ChatArgs),
    /// Fine-tune a model for a task; writes a Hugging Face model directory.
    Train(Box<cmd::train::TrainCmd>),
    /// Fold a LoRA adapter into its base model: a plain Hugging Face directory.
    Merge(cmd::lora::MergeArgs),
    /// Score a model on a task's data with the task's standard metric.
    Eval(Box<cmd::eval::EvalCmd>),
    /// Answer JSONL records with a trained model (classify, nli): one JSON line each.
    Predict(cmd::predict::PredictCmd),
    /// Sentence embeddings: JSONL {"text"} in, {"embedding"} out.
    Embed(cmd::embed::EmbedArgs),
    /// A persistent retrieval index: build, add, delete, stats, search (bm25, dense, hybrid).
    #[command(subcommand)]
    Index(cmd::index::IndexCommand),
    /// Answer questions from an index with a generator (retrieval-augmented generation),
    /// with the passages used as citations.
    Rag(Box<cmd::rag::RagArgs>),
    /// Serve models over HTTP: OpenAI-compatible endpoints and task endpoints.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Train a tokenizer (BPE or Unigram) on text files.
    #[command(subcommand)]
    Tokenizer(cmd::tokenizer::TokenizerCommand),
    /// Measure speed, side by side with a peer.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Pull the default model and generate with it: the first thing to run.
    Quickstart,
}

/// mimalloc v2's `mi_option_purge_delay` (its position in `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Tensor ops allocate and free multi-megabyte buffers at every layer; by default mimalloc
    // returns freed pages to the OS, so each reuse page-faults them in again (a profile of a
    // prefill spent 20% of its time in the kernel zeroing pages). Keep freed memory instead.
    // SAFETY: sets a process-wide allocator option before any threads start.
    let cli = Cli::parse();
    // Training allocates tensors of a new shape with each batch (lengths vary), so memory kept
    // for one shape is often useless for the next and the heap only grows: there, purge pages
    // that stayed free for a second. (mimalloc's default 10 ms purged between the ops of one
    // step: SST-2 training at 1 thread spent 14 s of 73 in the kernel; 1 s: 2 s of 62, same peak
    // memory.) Overridable with TASKLM_PURGE_DELAY_MS.
    let purge_ms = std::env::var("TASKLM_PURGE_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(match cli.command {
            Command::Train(_) | Command::Eval(_) => 1000,
            _ => -1,
        });
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, purge_ms as _) };
    if let Some(n) = cli.threads {
        // candle and gemm read their thread count from rayon's global pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon_init(n);
    }
    // The command runs on a worker of the pool, not on the main thread: a parallel op then
    // splits its work between the thread that calls it and the other workers, instead of the
    // main thread handing every op to the pool and sleeping until it finishes (a wake-up per
    // op, hundreds per decoded token).
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(WORKER_STACK_BYTES)
        .build();
    let result = match (pool, cli.command) {
        // The server's HTTP threads must not hold a worker of the pool: its engines hand their
        // tensor math to the pool instead.
        (pool, Command::Serve(a)) => cmd::serve::run(*a, pool.ok().map(std::sync::Arc::new)),
        (Ok(pool), command) => pool.install(|| run(command)),
        (Err(_), command) => run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Stack of the worker the command runs on: the main thread's usual 8 MiB and then some, for
/// deep template and JSON recursion.
const WORKER_STACK_BYTES: usize = 16 << 20;

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pull(a) => cmd::pull::run(a),
        Command::List => cmd::pull::list(),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Train(a) => cmd::train::run(*a),
        Command::Eval(a) => cmd::eval::run(*a),
        Command::Merge(a) => cmd::lora::merge(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Bench(b) => cmd::bench::run(b),
        Command::Embed(a) => cmd::embed::run(a),
        Command::Index(c) => cmd::index::run(c),
        Command::Rag(a) => cmd::rag::run(*a),
        Command::Tokenizer(t) => cmd::tokenizer::run(t),
        Command::Quickstart => cmd::quickstart::run(),
        Command::Serve(a) => cmd::serve::run(*a, None),
    }
}

fn rayon_init(n: usize) -> Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| e.to_string())
}
