//! `tasklm serve`: the OpenAI-compatible HTTP server (see the tasklm-serve crate).

use anyhow::{Context, Result};
use clap::Args;
use rayon::ThreadPool;
use std::path::PathBuf;
use std::sync::Arc;
use tasklm_hub::catalog::DEFAULT_MODEL;
use tasklm_serve::{EngineOptions, Limits, LoadSettings, ModelSpec, ServeOptions};

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// A model to serve: DIR, a catalog name, a .gguf file, or NAME=DIR to choose the name
    /// clients ask for (default: the directory or file name). Repeat for several.
    #[arg(long = "model", default_value = DEFAULT_MODEL)]
    pub models: Vec<ModelSpec>,
    /// NAME=DIR: serve the model NAME with the LoRA adapter DIR applied (over that --model's
    /// weights); with no --model of that name, DIR is served as NAME over the base its
    /// adapter_config.json names. Repeat for several.
    #[arg(long = "adapter")]
    pub adapters: Vec<ModelSpec>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 picks a free port (printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Accept only requests with `Authorization: Bearer KEY` (repeat for several keys).
    #[arg(long = "api-key")]
    pub api_keys: Vec<String>,
    /// A file with one API key per line (blank lines and `#` comments skipped).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Sequences decoding at once per model (continuous batching).
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Requests that may wait for a slot; past it, requests get 429 at once.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// Largest request body, in bytes (413 past it).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Most tokens one request may generate (`max_tokens` over it is a 400).
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    /// Chat template for every decoder (llama2, chatml) instead of the model's own.
    #[arg(long)]
    pub template: Option<String>,
    /// Run GGUF models' quantized matrices as stored (faster decoding).
    #[arg(long)]
    pub quantized: bool,
}

fn read_keys(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--api-key-file {}", path.display()))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        anyhow::bail!("--api-key-file {}: no key in the file", path.display());
    }
    Ok(keys)
}

pub fn run(a: ServeArgs, pool: Option<Arc<ThreadPool>>) -> Result<()> {
    let mut api_keys = a.api_keys.clone();
    if let Some(p) = &a.api_key_file {
        api_keys.extend(read_keys(p)?);
    }
    if a.max_batch == 0 || a.max_tokens == 0 {
        anyhow::bail!("--max-batch and --max-tokens must be at least 1");
    }
    let mut models = a.models;
    // The adapter copies that name another base live as long as the server.
    let mut _views = Vec::new();
    for ad in &a.adapters {
        let flags = super::lora::AdapterFlags {
            adapter: Some(ad.spec.clone().into()),
        };
        match models.iter_mut().find(|m| m.name == ad.name) {
            Some(m) => {
                let (spec, view) = flags.model_spec(Some(&m.spec), None)?;
                m.spec = spec;
                _views.extend(view);
            }
            None => {
                let (spec, _) = flags.model_spec(None, None)?;
                models.push(ModelSpec {
                    name: ad.name.clone(),
                    spec,
                });
            }
        }
    }
    let options = ServeOptions {
        host: a.host,
        port: a.port,
        models,
        api_keys,
        limits: Limits {
            max_body: a.max_body,
            max_tokens: a.max_tokens,
            max_queue: a.max_queue,
        },
        load: LoadSettings {
            template: a.template,
            quantized: a.quantized,
            engine: EngineOptions {
                max_batch: a.max_batch,
                max_queue: a.max_queue,
            },
            progress: true,
        },
    };
    Ok(tasklm_serve::run(options, pool)?)
}
