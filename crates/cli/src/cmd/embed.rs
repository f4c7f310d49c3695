//! `tasklm embed`: JSONL `{"text"}` in (an `"id"` is kept), `{"embedding": [...]}` out, one line
//! each, embedded `--batch-size` records at a time as sentence-transformers' `encode` does.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use tasklm_hub::Embedder;

#[derive(Args)]
pub struct EmbedArgs {
    /// A sentence-transformers model: catalog name or directory.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub model: String,
    /// JSONL `{"text"[, "id"]}`; `-` or absent reads stdin.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Records per forward pass.
    #[arg(long, default_value_t = tasklm_hub::embed::DEFAULT_BATCH)]
    pub batch_size: usize,
}

/// Records read but not yet embedded: their ids (when given) and token ids.
struct Pending {
    ids: Vec<Option<Value>>,
    tokens: Vec<Vec<u32>>,
}

impl Pending {
    fn flush(&mut self, e: &Embedder, batch: usize, out: &mut impl Write) -> Result<()> {
        let (vectors, _) = e.embed_batched(&self.tokens, batch)?;
        for (id, v) in self.ids.drain(..).zip(vectors) {
            let line = match id {
                Some(id) => json!({"id": id, "embedding": v}),
                None => json!({"embedding": v}),
            };
            writeln!(out, "{line}")?;
        }
        self.tokens.clear();
        out.flush()?;
        Ok(())
    }
}

pub fn run(a: EmbedArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let source = tasklm_hub::resolve(&a.model, true)?;
    let embedder = Embedder::load(&source)?;
    let mut out = std::io::stdout().lock();
    let mut pending = Pending {
        ids: Vec::new(),
        tokens: Vec::new(),
    };
    super::input::for_each_record(a.input.as_deref(), |v, line, name| {
        let Some(text) = v.get("text").and_then(Value::as_str) else {
            bail!("{name}:{line}: expected an object with a string \"text\"");
        };
        let tokens = embedder
            .tokenize(text)
            .with_context(|| format!("{name}:{line}"))?;
        pending.ids.push(v.get("id").cloned());
        pending.tokens.push(tokens);
        if pending.tokens.len() >= a.batch_size {
            pending.flush(&embedder, a.batch_size, &mut out)?;
        }
        Ok(())
    })?;
    pending.flush(&embedder, a.batch_size, &mut out)
}
