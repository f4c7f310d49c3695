//! Turning a `--model` argument into files on disk.

use crate::catalog;
use crate::{HubError, Result};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Where a model's weights and tokenizer are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face layout directory (`config.json`, safetensors, `tokenizer.json`).
    HfDir(PathBuf),
    /// A single GGUF file with its tokenizer inside.
    Gguf(PathBuf),
    /// A PEFT LoRA adapter directory (`adapter_config.json`, `adapter_model.safetensors`) over
    /// its base model.
    Adapter {
        dir: PathBuf,
        base: Box<ModelSource>,
    },
}

impl ModelSource {
    /// The directory or file named on the command line (an adapter's own directory).
    pub fn path(&self) -> &Path {
        match self {
            Self::HfDir(p) | Self::Gguf(p) => p,
            Self::Adapter { dir, .. } => dir,
        }
    }

    /// The source of the weights the model is built from: the base of an adapter.
    pub fn base(&self) -> &ModelSource {
        match self {
            Self::Adapter { base, .. } => base.base(),
            other => other,
        }
    }

    /// Is the base a GGUF file?
    pub fn is_gguf(&self) -> bool {
        matches!(self.base(), Self::Gguf(_))
    }
}

/// An adapter directory over `base` (a `--model` spec), or over the base its
/// `adapter_config.json` names (`base_model_name_or_path`; a relative path is tried from the
/// working directory, then from the adapter's).
pub fn resolve_adapter(dir: &Path, base: Option<&str>, progress: bool) -> Result<ModelSource> {
    if !crate::adapter::is_adapter_dir(dir) {
        return Err(HubError::file(
            dir,
            format!(
                "not a LoRA adapter directory: no {}",
                crate::adapter::ADAPTER_CONFIG
            ),
        ));
    }
    let base = match base {
        Some(spec) => resolve(spec, progress)?,
        None => {
            let named = crate::adapter::AdapterConfig::read(dir)?.base_model;
            let beside = dir.join(&named);
            let spec = if !Path::new(&named).exists() && beside.exists() {
                beside.to_string_lossy().into_owned()
            } else {
                named
            };
            resolve(&spec, progress).map_err(|e| {
                HubError::file(
                    dir.join(crate::adapter::ADAPTER_CONFIG),
                    format!("`base_model_name_or_path`: {e} (pass --model BASE)"),
                )
            })?
        }
    };
    if matches!(base, ModelSource::Adapter { .. }) {
        return Err(HubError::file(
            dir,
            "the base of an adapter cannot be another adapter",
        ));
    }
    Ok(ModelSource::Adapter {
        dir: dir.to_path_buf(),
        base: Box::new(base),
    })
}

/// How long a hub download may take to answer before we give up (the hub may be unreachable).
const HUB_DEADLINE: Duration = Duration::from_secs(20);

/// Resolves, in order: an existing directory or `.gguf` file; a catalog name (pulled into the
/// cache if needed); a hub id `org/name`.
pub fn resolve(spec: &str, progress: bool) -> Result<ModelSource> {
    let path = Path::new(spec);
    if path.is_dir() && crate::adapter::is_adapter_dir(path) {
        return resolve_adapter(path, None, progress);
    }
    if path.is_dir() {
        return Ok(ModelSource::HfDir(path.to_path_buf()));
    }
    if path.is_file() {
        return if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            Ok(ModelSource::Gguf(path.to_path_buf()))
        } else {
            Err(HubError::file(
                path,
                "expected a model directory or a .gguf file",
            ))
        };
    }
    if let Some(entry) = catalog::find(spec) {
        let p = crate::pull::pull(entry, progress)?;
        return Ok(if p.is_dir() {
            ModelSource::HfDir(p)
        } else {
            ModelSource::Gguf(p)
        });
    }
    let looks_like_path = spec.starts_with('.') || spec.starts_with('/') || spec.ends_with(".gguf");
    if !looks_like_path && spec.split('/').count() == 2 && !spec.contains(char::is_whitespace) {
        return from_hub(spec, progress);
    }
    if looks_like_path {
        return Err(HubError::file(path, "no such file or directory"));
    }
    Err(HubError::UnknownModel {
        name: spec.into(),
        known: catalog::names(),
    })
}

/// Downloads a Hugging Face hub repository's model files with `hf-hub`, giving up after
/// [`HUB_DEADLINE`] so an unreachable hub fails fast instead of hanging.
fn from_hub(id: &str, progress: bool) -> Result<ModelSource> {
    let (tx, rx) = mpsc::channel();
    let id_owned = id.to_string();
    std::thread::spawn(move || {
        let result = (|| -> std::result::Result<PathBuf, String> {
            let api = hf_hub::api::sync::ApiBuilder::new()
                .with_progress(progress)
                .with_retries(0)
                .build()
                .map_err(|e| e.to_string())?;
            let repo = api.model(id_owned);
            let config = repo.get("config.json").map_err(|e| e.to_string())?;
            for f in ["tokenizer.json", "tokenizer_config.json"] {
                repo.get(f).map_err(|e| format!("{f}: {e}"))?;
            }
            if repo.get("model.safetensors").is_err() {
                let index = repo
                    .get("model.safetensors.index.json")
                    .map_err(|e| e.to_string())?;
                let shards =
                    tasklm_models::weights::shard_names(&index).map_err(|e| e.to_string())?;
                for s in shards {
                    repo.get(&s).map_err(|e| format!("{s}: {e}"))?;
                }
            }
            Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
        })();
        let _ = tx.send(result);
    });
    let err = |msg: String| HubError::Hub { id: id.into(), msg };
    match rx.recv_timeout(HUB_DEADLINE) {
        Ok(Ok(dir)) => Ok(ModelSource::HfDir(dir)),
        Ok(Err(e)) => Err(err(format!(
            "download failed ({e}); without network, use a local directory, a .gguf file or a catalog name ({})",
            catalog::names()
        ))),
        Err(_) => Err(err(format!(
            "the hub did not answer within {}s; without network, use a local directory, a .gguf file or a catalog name ({})",
            HUB_DEADLINE.as_secs(),
            catalog::names()
        ))),
    }
}
