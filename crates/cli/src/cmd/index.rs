//! `tasklm index build|add|delete|stats|search`: the persistent retrieval index (tasklm-rag),
//! an index directory or a PostgreSQL store (a `postgres://` URL), through the same commands.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tasklm_rag::{
    BuildOptions, ChunkConfig, EmbeddingModel, Fusion, IndexLocation, Mode, SearchOptions,
};

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Chunk, embed and index documents into a new index (or a new version of one).
    Build(BuildArgs),
    /// Add documents to an index (embedded with the model it was built with).
    Add(AddArgs),
    /// Remove documents from an index by id.
    Delete(DeleteArgs),
    /// Print an index's model, chunking, counts and size on disk as JSON.
    Stats(StatsArgs),
    /// Search an index: JSON hits with scores, document ids, character spans and text.
    Search(SearchArgs),
}

#[derive(Args)]
pub struct BuildArgs {
    /// The embedding model (sentence-transformers): catalog name or directory.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub model: String,
    /// Documents: JSONL {"id", "title", "text"}, a folder of .txt/.md files, or SQuAD JSON
    /// (each paragraph one document, id `{article title}/{paragraph index}`).
    #[arg(long)]
    pub data: PathBuf,
    /// The index directory (created; an index there gets a new version).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    pub out: Option<PathBuf>,
    /// A PostgreSQL store instead of a directory:
    /// postgres://USER:PASSWORD@HOST:PORT/DB[?index=NAME] (pgvector needed; an index of that
    /// name is replaced when the build commits).
    #[arg(long)]
    pub store: Option<String>,
    /// Tokens per chunk, in the model's tokens (capped at its input length less 2).
    #[arg(long, default_value_t = tasklm_rag::DEFAULT_CHUNK_TOKENS)]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks of a document.
    #[arg(long, default_value_t = tasklm_rag::DEFAULT_OVERLAP)]
    pub chunk_overlap: usize,
    /// Chunks per forward pass of the encoder.
    #[arg(long, default_value_t = tasklm_hub::embed::DEFAULT_BATCH)]
    pub batch_size: usize,
    /// Chunks from which the index also gets an HNSW graph for dense search (exact below).
    #[arg(long, default_value_t = tasklm_rag::DEFAULT_HNSW_MIN_CHUNKS)]
    pub hnsw_min_chunks: usize,
}

/// The index a command works on: a directory, or a PostgreSQL store's URL.
#[derive(Args)]
pub struct IndexArg {
    /// The index: a directory, or postgres://USER:PASSWORD@HOST:PORT/DB[?index=NAME].
    #[arg(required_unless_present = "store")]
    pub index: Option<String>,
    /// The index as a PostgreSQL URL (the same as giving the URL as INDEX).
    #[arg(long, conflicts_with = "index")]
    pub store: Option<String>,
}

impl IndexArg {
    fn location(&self) -> Result<IndexLocation> {
        match (&self.index, &self.store) {
            (_, Some(url)) => store_url(url),
            (Some(index), None) => Ok(IndexLocation::parse(index)?),
            (None, None) => bail!("give the index (a directory or a postgres:// URL)"),
        }
    }
}

/// `--store URL`, which must name a PostgreSQL store.
fn store_url(url: &str) -> Result<IndexLocation> {
    if !tasklm_rag::pg::is_url(url) {
        bail!("--store takes a postgres:// or postgresql:// URL, not `{url}` (give a directory with --out or as INDEX)");
    }
    Ok(IndexLocation::parse(url)?)
}

#[derive(Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub index: IndexArg,
    /// Documents, as for `index build`.
    #[arg(long)]
    pub data: PathBuf,
    /// The embedding model; must be the one the index was built with [default: that one].
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, default_value_t = tasklm_hub::embed::DEFAULT_BATCH)]
    pub batch_size: usize,
}

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub index: IndexArg,
    /// Document ids to remove (repeat the flag, or separate by commas).
    #[arg(long = "id", required = true, value_delimiter = ',')]
    pub ids: Vec<String>,
}

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub index: IndexArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FusionRule {
    Scores,
    Rrf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SearchMode {
    Bm25,
    Dense,
    /// Reciprocal rank fusion of bm25 and dense (k = 60).
    Hybrid,
}

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub index: IndexArg,
    /// One query; prints {"query", "mode", "hits"}.
    #[arg(long, conflicts_with = "queries", required_unless_present = "queries")]
    pub query: Option<String>,
    /// JSONL {"id", "query"}: one line out per query, {"id", "hits"}.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Hits per query.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    #[arg(long, value_enum, default_value_t = SearchMode::Hybrid)]
    pub mode: SearchMode,
    /// How hybrid fuses the BM25 and dense rankings: scores (min-max normalised, averaged) or
    /// rrf (reciprocal rank fusion, k = 60).
    #[arg(long, value_enum, default_value_t = FusionRule::Scores)]
    pub fusion: FusionRule,
    /// The embedding model; must be the one the index was built with [default: that one].
    #[arg(long)]
    pub model: Option<String>,
    /// PostgreSQL: dense search through the HNSW index (approximate) instead of exact. An
    /// index directory uses its HNSW graph whenever it has one.
    #[arg(long)]
    pub approximate: bool,
    /// Candidates kept by an approximate search (Postgres's hnsw.ef_search; at least k).
    #[arg(long, default_value_t = tasklm_rag::hnsw::DEFAULT_EF_SEARCH)]
    pub ef_search: usize,
    /// Print per-query latency to stderr at the end as JSON: p50/p99 of the search itself and
    /// of search plus the query's share of its batch's embedding (queries are embedded 64 at
    /// a time).
    #[arg(long)]
    pub latency: bool,
}

pub fn run(c: IndexCommand) -> Result<()> {
    match c {
        IndexCommand::Build(a) => build(a),
        IndexCommand::Add(a) => add(a),
        IndexCommand::Delete(a) => {
            let m = a.index.location()?.delete(&a.ids)?;
            print_json(&serde_json::to_value(m)?)
        }
        IndexCommand::Stats(a) => print_json(&a.index.location()?.open()?.stats()?),
        IndexCommand::Search(a) => search(a),
    }
}

fn print_json(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    Ok(())
}

fn build(a: BuildArgs) -> Result<()> {
    let t0 = Instant::now();
    let model = EmbeddingModel::load(&a.model, true)?;
    let opts = BuildOptions {
        chunking: ChunkConfig {
            tokens: a.chunk_tokens,
            overlap: a.chunk_overlap,
        },
        batch: a.batch_size,
        hnsw_min_chunks: a.hnsw_min_chunks,
    };
    let location = match (&a.out, &a.store) {
        (_, Some(url)) => store_url(url)?,
        (Some(out), None) => IndexLocation::Dir(out.clone()),
        (None, None) => bail!("give --out DIR or --store postgres://..."),
    };
    let m = location.build(&model, &a.data, opts)?;
    eprintln!(
        "indexed {} documents in {} chunks in {:.1} s: {}",
        m.documents,
        m.chunks,
        t0.elapsed().as_secs_f64(),
        location.display()
    );
    print_json(&serde_json::to_value(m)?)
}

fn add(a: AddArgs) -> Result<()> {
    let location = a.index.location()?;
    let manifest = location.read_manifest()?;
    let model = location.model(&manifest, a.model.as_deref(), true)?;
    let m = location.add(&model, &a.data, a.batch_size)?;
    print_json(&serde_json::to_value(m)?)
}

/// Queries embedded together.
const QUERY_BATCH: usize = 64;

fn search(a: SearchArgs) -> Result<()> {
    let mode = match a.mode {
        SearchMode::Bm25 => Mode::Bm25,
        SearchMode::Dense => Mode::Dense,
        SearchMode::Hybrid => Mode::Hybrid,
    };
    let location = a.index.location()?;
    let mut index = location.open()?;
    let model = if mode.needs_vector() {
        Some(location.model(index.manifest(), a.model.as_deref(), true)?)
    } else {
        if let Some(given) = &a.model {
            let source = tasklm_hub::resolve(given, true)?;
            location.check_model(index.manifest(), given, source.path())?;
        }
        None
    };
    let opts = SearchOptions {
        approximate: a.approximate,
        ef_search: a.ef_search,
        fusion: match a.fusion {
            FusionRule::Scores => Fusion::Scores,
            FusionRule::Rrf => Fusion::Rrf,
        },
    };
    let mut out = std::io::stdout().lock();
    let mut latency = super::latency::Latency::default();
    // Answers a batch of (id, query) pairs, embedding the queries together.
    let mut answer = |batch: &mut Vec<(Option<Value>, String)>| -> Result<()> {
        let texts: Vec<&str> = batch.iter().map(|b| b.1.as_str()).collect();
        let t0 = Instant::now();
        let vectors = match &model {
            Some(m) => m.embedder.embed_texts(&texts, QUERY_BATCH)?,
            None => Vec::new(),
        };
        let embed_share = t0.elapsed().as_secs_f64() / texts.len().max(1) as f64;
        for (i, (id, query)) in batch.drain(..).enumerate() {
            let t0 = Instant::now();
            let hits = index.search(&query, vectors.get(i).map(Vec::as_slice), a.k, mode, &opts)?;
            let search_s = t0.elapsed().as_secs_f64();
            latency.record("search", search_s);
            latency.record("query", search_s + embed_share);
            let line = match id {
                Some(id) => json!({"id": id, "hits": hits}),
                None => {
                    json!({"query": query, "mode": format!("{mode:?}").to_lowercase(), "hits": hits})
                }
            };
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        Ok(())
    };
    let mut batch = Vec::new();
    if let Some(q) = a.query {
        batch.push((None, q));
        answer(&mut batch)?;
        latency.report(a.latency);
        return Ok(());
    }
    let Some(path) = a.queries.as_deref() else {
        bail!("give --query TEXT or --queries FILE");
    };
    super::input::for_each_record(Some(path), |v, line, name| {
        let Some(query) = v.get("query").and_then(Value::as_str) else {
            bail!("{name}:{line}: expected an object with a string \"query\" (and an \"id\")");
        };
        let id = v.get("id").cloned().unwrap_or(json!(line));
        batch.push((Some(id), query.to_string()));
        if batch.len() >= QUERY_BATCH {
            answer(&mut batch).with_context(|| format!("{name}:{line}"))?;
        }
        Ok(())
    })?;
    answer(&mut batch)?;
    latency.report(a.latency);
    Ok(())
}
