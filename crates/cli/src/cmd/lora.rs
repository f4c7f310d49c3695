//! LoRA on the command line: `train --lora ...`, `--adapter DIR` for the commands that load a
//! model, and `tasklm merge`.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tasklm_hub::adapter::{is_adapter_dir, ADAPTER_CONFIG};
use tasklm_nn::LoraSpec;
use tasklm_train::lora::ALL_LINEAR;
use tasklm_train::LoraTraining;

/// `tasklm train --lora`: train a LoRA adapter (PEFT format) instead of every weight.
#[derive(Args, Clone, Debug, Default)]
pub struct LoraFlags {
    /// Train a LoRA adapter; the output directory is a PEFT adapter (adapter_config.json,
    /// adapter_model.safetensors) over the base model.
    #[arg(long)]
    pub lora: bool,
    /// Adapter rank [default: 16].
    #[arg(long)]
    pub lora_r: Option<usize>,
    /// Scale numerator: the update is scaled by alpha / r [default: 32].
    #[arg(long)]
    pub lora_alpha: Option<f64>,
    /// Dropout on the adapter's input while training [default: 0.05].
    #[arg(long)]
    pub lora_dropout: Option<f32>,
    /// Comma-separated layer names to adapt (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,
    /// down_proj), or all-linear [default: q_proj,v_proj for Llama/Qwen2, query,value for BERT].
    #[arg(long)]
    pub lora_targets: Option<String>,
    /// Scale by alpha / sqrt(r) (rsLoRA) instead of alpha / r.
    #[arg(long)]
    pub lora_rslora: bool,
    /// Comma-separated modules trained in full and saved with the adapter (lm_head, score).
    #[arg(long)]
    pub modules_to_save: Option<String>,
    /// With a GGUF base: keep its matrices quantized in memory (QLoRA-style), the frozen base
    /// running quantized matmuls forward and backward; the adapter then loads over the
    /// quantized base by itself (generate, eval, predict, serve). Default: f32-dequantized.
    #[arg(long)]
    pub quantized: bool,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

impl LoraFlags {
    /// The LoRA settings, None without --lora; a LoRA flag without --lora is an error.
    pub fn settings(&self) -> Result<Option<LoraTraining>> {
        if !self.lora {
            let given = [
                ("--lora-r", self.lora_r.is_some()),
                ("--lora-alpha", self.lora_alpha.is_some()),
                ("--lora-dropout", self.lora_dropout.is_some()),
                ("--lora-targets", self.lora_targets.is_some()),
                ("--lora-rslora", self.lora_rslora),
                ("--modules-to-save", self.modules_to_save.is_some()),
                ("--quantized", self.quantized),
            ];
            if let Some((name, _)) = given.iter().find(|g| g.1) {
                bail!("{name} applies to LoRA training: add --lora");
            }
            return Ok(None);
        }
        let r = self.lora_r.unwrap_or(16);
        if r == 0 {
            bail!("--lora-r must be at least 1");
        }
        let dropout = self.lora_dropout.unwrap_or(0.05);
        if !(0.0..1.0).contains(&dropout) {
            bail!("--lora-dropout {dropout}: expected a probability in [0, 1)");
        }
        let targets = self.lora_targets.as_deref().map(list).unwrap_or_default();
        if targets.len() > 1 && targets.iter().any(|t| t == ALL_LINEAR) {
            bail!("--lora-targets: {ALL_LINEAR} stands alone, not in a list");
        }
        Ok(Some(LoraTraining {
            spec: LoraSpec {
                r,
                alpha: self.lora_alpha.unwrap_or(32.0),
                dropout,
                rslora: self.lora_rslora,
            },
            targets,
            modules_to_save: self
                .modules_to_save
                .as_deref()
                .map(list)
                .unwrap_or_default(),
            seed: 0,
            quantized_base: self.quantized,
        }))
    }
}

/// `--adapter DIR`: a LoRA adapter over `--model` (or over the base its adapter_config.json
/// names when `--model` is not given).
#[derive(Args, Clone, Debug, Default)]
pub struct AdapterFlags {
    /// A LoRA adapter directory (PEFT format) to apply to the model; without --model, its
    /// adapter_config.json's base_model_name_or_path is the base.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

/// A copy of an adapter directory naming another base; removed when dropped.
pub struct AdapterView(PathBuf);

impl Drop for AdapterView {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AdapterFlags {
    /// The model spec the command loads: `model` alone, the adapter directory alone (its base
    /// from its config), or, for both, a temporary copy of the adapter whose config names
    /// `model` as its base (kept alive by the returned view).
    pub fn model_spec(
        &self,
        model: Option<&str>,
        default: Option<&str>,
    ) -> Result<(String, Option<AdapterView>)> {
        let Some(dir) = &self.adapter else {
            let m = model.or(default).context("--model is required")?;
            return Ok((m.to_string(), None));
        };
        if !is_adapter_dir(dir) {
            bail!(
                "--adapter {}: not a LoRA adapter directory (no {ADAPTER_CONFIG})",
                dir.display()
            );
        }
        let Some(base) = model else {
            return Ok((dir.to_string_lossy().into_owned(), None));
        };
        let view = adapter_view(dir, base)?;
        Ok((view.0.to_string_lossy().into_owned(), Some(view)))
    }
}

fn adapter_view(dir: &Path, base: &str) -> Result<AdapterView> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let view = std::env::temp_dir().join(format!("tasklm-adapter-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&view).with_context(|| view.display().to_string())?;
    let guard = AdapterView(view.clone());
    for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let p = e?.path();
        if p.is_file() {
            if let Some(name) = p.file_name() {
                std::fs::copy(&p, view.join(name)).with_context(|| p.display().to_string())?;
            }
        }
    }
    let cfg_path = view.join(ADAPTER_CONFIG);
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path)?)
        .with_context(|| dir.join(ADAPTER_CONFIG).display().to_string())?;
    // A base given as a relative path is the caller's, not the copy's.
    let base = match std::fs::canonicalize(base) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(_) => base.to_string(),
    };
    cfg["base_model_name_or_path"] = base.into();
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&cfg)?)?;
    Ok(guard)
}

/// `tasklm merge`: fold a LoRA adapter into its base and write a plain model directory.
#[derive(Args, Clone, Debug)]
pub struct MergeArgs {
    /// Base model [default: the adapter's base_model_name_or_path].
    #[arg(long)]
    pub model: Option<String>,
    /// The LoRA adapter directory (PEFT format).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output directory: config.json, model.safetensors, tokenizer files.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn merge(a: MergeArgs) -> Result<()> {
    let flags = AdapterFlags {
        adapter: Some(a.adapter.clone()),
    };
    let (spec, _view) = flags.model_spec(a.model.as_deref(), None)?;
    let source = tasklm_hub::resolve(&spec, true)?;
    tasklm_hub::write_merged(&source, &a.out)
        .with_context(|| format!("merging {}", a.adapter.display()))?;
    eprintln!(
        "merged {} into {}: written to {}",
        a.adapter.display(),
        source.base().path().display(),
        a.out.display()
    );
    Ok(())
}
