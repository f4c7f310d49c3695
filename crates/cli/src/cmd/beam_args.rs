//! Beam search flags shared by `generate` (and, for seq2seq models, `eval` and `predict`), with
//! the model directory's `generation_config.json` as the defaults the flags override.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use std::path::Path;
use tasklm_generate::{BeamParams, EarlyStopping};
use tasklm_hub::ModelSource;

#[derive(Args, Clone, Debug, Default)]
pub struct BeamArgs {
    /// Beam search with this many beams (default: the model's generation_config.json, else 1,
    /// which samples).
    #[arg(long)]
    pub num_beams: Option<usize>,
    /// Beam hypotheses score sum(logprobs) / length^P [default: 1.0].
    #[arg(long, allow_hyphen_values = true)]
    pub length_penalty: Option<f32>,
    /// When beam search stops: false (a heuristic), true (once num_beams hypotheses finished)
    /// or never (when no beam can improve) [default: false].
    #[arg(long)]
    pub early_stopping: Option<EarlyStopping>,
    /// Never repeat an n-gram of this size (0 = off).
    #[arg(long)]
    pub no_repeat_ngram_size: Option<usize>,
    /// Ban end-of-sequence tokens until this many tokens were generated.
    #[arg(long)]
    pub min_new_tokens: Option<usize>,
    /// With --json and beams: report this many hypotheses, best first [default: 1].
    #[arg(long)]
    pub num_return_sequences: Option<usize>,
}

fn count(cfg: &Value, path: &Path, key: &str) -> Result<Option<usize>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(Some(n as usize)),
            None => bail!(
                "{}: `{key}` must be a non-negative integer, got {v}",
                path.display()
            ),
        },
    }
}

fn token(cfg: &Value, path: &Path, key: &str) -> Result<Option<u32>> {
    match cfg.get(key) {
        Some(Value::Array(a)) if a.len() == 1 => token(&serde_json::json!({key: a[0]}), path, key),
        Some(Value::Array(a)) if a.len() > 1 => bail!(
            "{}: `{key}` lists {} tokens; tasklm forces one",
            path.display(),
            a.len()
        ),
        _ => Ok(count(cfg, path, key)?.map(|t| t as u32)),
    }
}

/// The directory whose `generation_config.json` gives a model's generation defaults: an
/// adapter's own (tasklm writes one), else its base directory's; none for a GGUF file.
pub fn generation_config_dir(source: &ModelSource) -> Option<&Path> {
    match source {
        ModelSource::Adapter { dir, .. } if dir.join("generation_config.json").is_file() => {
            Some(dir.as_path())
        }
        s => match s.base() {
            ModelSource::HfDir(d) => Some(d.as_path()),
            _ => None,
        },
    }
}

/// The beam options of `generation_config.json` (missing file: transformers' defaults).
fn from_generation_config(dir: &Path, max_new_tokens: usize) -> Result<BeamParams> {
    let mut p = BeamParams::new(1, max_new_tokens);
    let path = dir.join("generation_config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(p);
    };
    let cfg: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    if let Some(n) = count(&cfg, &path, "num_beams")? {
        p.num_beams = n;
    }
    if let Some(v) = cfg.get("length_penalty").filter(|v| !v.is_null()) {
        p.length_penalty = v.as_f64().with_context(|| {
            format!(
                "{}: `length_penalty` must be a number, got {v}",
                path.display()
            )
        })? as f32;
    }
    p.early_stopping = match cfg.get("early_stopping") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => EarlyStopping::Heuristic,
        Some(Value::Bool(true)) => EarlyStopping::Done,
        Some(Value::String(s)) if s == "never" => EarlyStopping::Never,
        Some(v) => bail!(
            "{}: `early_stopping` must be true, false or \"never\", got {v}",
            path.display()
        ),
    };
    p.no_repeat_ngram_size = count(&cfg, &path, "no_repeat_ngram_size")?.unwrap_or(0);
    p.min_new_tokens = count(&cfg, &path, "min_new_tokens")?.unwrap_or(0);
    p.num_return_sequences = count(&cfg, &path, "num_return_sequences")?.unwrap_or(1);
    p.forced_bos_token_id = token(&cfg, &path, "forced_bos_token_id")?;
    p.forced_eos_token_id = token(&cfg, &path, "forced_eos_token_id")?;
    Ok(p)
}

impl BeamArgs {
    /// The beam options when beam search is asked for (more than one beam, by flag or by the
    /// model directory's `generation_config.json`), else `None`.
    pub fn resolve(
        &self,
        model_dir: Option<&Path>,
        max_new_tokens: usize,
    ) -> Result<Option<BeamParams>> {
        let mut p = match model_dir {
            Some(dir) => from_generation_config(dir, max_new_tokens)?,
            None => BeamParams::new(1, max_new_tokens),
        };
        if let Some(n) = self.num_beams {
            p.num_beams = n;
        }
        if let Some(x) = self.length_penalty {
            p.length_penalty = x;
        }
        if let Some(x) = self.early_stopping {
            p.early_stopping = x;
        }
        if let Some(x) = self.no_repeat_ngram_size {
            p.no_repeat_ngram_size = x;
        }
        if let Some(x) = self.min_new_tokens {
            p.min_new_tokens = x;
        }
        if let Some(x) = self.num_return_sequences {
            p.num_return_sequences = x;
        }
        if p.num_beams <= 1 {
            return Ok(None);
        }
        p.num_return_sequences = p.num_return_sequences.min(p.num_beams).max(1);
        p.validate()?;
        Ok(Some(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_generation_config() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("generation_config.json"),
            r#"{"num_beams": 4, "length_penalty": 0.6, "early_stopping": "never", "forced_eos_token_id": [2], "no_repeat_ngram_size": 3}"#,
        )?;
        let p = BeamArgs::default()
            .resolve(Some(dir.path()), 20)?
            .context("4 beams from the config")?;
        assert_eq!((p.num_beams, p.length_penalty), (4, 0.6));
        assert_eq!(p.early_stopping, EarlyStopping::Never);
        assert_eq!(
            (p.forced_eos_token_id, p.no_repeat_ngram_size),
            (Some(2), 3)
        );
        let flags = BeamArgs {
            num_beams: Some(2),
            length_penalty: Some(1.0),
            ..BeamArgs::default()
        };
        let p = flags.resolve(Some(dir.path()), 20)?.context("2 beams")?;
        assert_eq!((p.num_beams, p.length_penalty), (2, 1.0));
        let one = BeamArgs {
            num_beams: Some(1),
            ..BeamArgs::default()
        };
        assert!(
            one.resolve(Some(dir.path()), 20)?.is_none(),
            "1 beam samples"
        );
        std::fs::write(
            dir.path().join("generation_config.json"),
            r#"{"num_beams": "four"}"#,
        )?;
        let e = BeamArgs::default()
            .resolve(Some(dir.path()), 20)
            .expect_err("a string")
            .to_string();
        assert!(
            e.contains("generation_config.json") && e.contains("`num_beams`"),
            "{e}"
        );
        Ok(())
    }
}
