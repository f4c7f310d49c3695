//! The models a server holds, each loaded once at start: a decoder answers the chat and
//! completion endpoints through its [`Engine`], an encoder answers `/v1/embeddings`, and a model
//! trained by tasklm for a task that `predict` serves answers `/v1/tasks/{task}` through its
//! [`Predictor`].

use crate::engine::{Engine, EngineOptions};
use crate::error::{ApiError, Result, ServeError};
use crate::metrics::Metrics;
use rayon::ThreadPool;
use std::str::FromStr;
use std::sync::Arc;
use tasklm_hub::Embedder;
use tasklm_hub::{LoadOptions, LoadedDecoder, ModelKind, ModelSource};
use tasklm_tasks::{PredictJob, Predictor, TaskKind};
use tasklm_text::ChatTemplate;

/// `--model NAME=SPEC` or `--model SPEC` (named after the spec's last path component).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub spec: String,
}

impl FromStr for ModelSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, spec) = match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains('/') => (n.to_string(), p.to_string()),
            _ => {
                let trimmed = s.trim_end_matches('/');
                let base = std::path::Path::new(trimmed)
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_else(|| trimmed.to_string());
                let base = base.strip_suffix(".gguf").unwrap_or(&base).to_string();
                (base, s.to_string())
            }
        };
        if spec.is_empty() {
            return Err(format!("`{s}`: expected DIR, NAME or name=DIR"));
        }
        Ok(Self { name, spec })
    }
}

/// How models are loaded.
#[derive(Clone, Debug, Default)]
pub struct LoadSettings {
    /// Chat template for every decoder (llama2, chatml) instead of the model's own.
    pub template: Option<String>,
    /// Run GGUF models' quantized matrices as stored.
    pub quantized: bool,
    pub engine: EngineOptions,
    pub progress: bool,
}

/// A decoder with its chat template and engine.
pub struct Generator {
    pub decoder: Arc<LoadedDecoder>,
    /// The chat template, or why there is none (chat completions then answer 400 with it).
    pub template: std::result::Result<ChatTemplate, String>,
    pub engine: Engine,
}

impl Generator {
    pub fn context(&self) -> usize {
        self.decoder.model.max_context()
    }
}

/// A trained task model and its predictor.
pub struct TaskServer {
    pub task: TaskKind,
    pub predictor: Box<dyn Predictor>,
}

/// One served model.
pub struct ServedModel {
    pub name: String,
    pub spec: String,
    /// Unix time it was loaded (`/v1/models`' `created`).
    pub created: u64,
    pub generator: Option<Generator>,
    pub embedder: Option<Embedder>,
    pub task: Option<TaskServer>,
}

impl ServedModel {
    /// What it answers, for `/v1/models` and error messages.
    pub fn capabilities(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.generator.is_some() {
            out.extend(["chat.completions".to_string(), "completions".to_string()]);
        }
        if self.embedder.is_some() {
            out.push("embeddings".into());
        }
        if let Some(t) = &self.task {
            out.push(format!("tasks/{}", t.task));
        }
        out
    }

    /// The 400 for a request this model cannot answer: "`name` {why}; it serves ...".
    pub fn cannot(&self, why: &str) -> ApiError {
        ApiError::invalid(
            "model",
            format!(
                "`{}` {why}; it serves {}",
                self.name,
                self.capabilities().join(", ")
            ),
        )
    }

    /// The generator, or the 400 for a model that is not generative.
    pub fn as_generator(&self) -> Result<&Generator, ApiError> {
        self.generator
            .as_ref()
            .ok_or_else(|| self.cannot("is not a generative model"))
    }

    /// The embedder, or the 400 for a model that is not an encoder.
    pub fn as_embedder(&self) -> Result<&Embedder, ApiError> {
        self.embedder
            .as_ref()
            .ok_or_else(|| self.cannot("is not an embedding model"))
    }
}

fn model_error(m: &ModelSpec, e: impl std::error::Error + Send + Sync + 'static) -> ServeError {
    ServeError::Model {
        name: m.name.clone(),
        spec: m.spec.clone(),
        source: Box::new(e),
    }
}

/// The task a tasklm-trained directory was trained for, when `predict` serves it (sft and chat
/// models are served by the generation endpoints instead).
fn trained_task(meta: Option<&serde_json::Value>) -> Option<TaskKind> {
    let task = TaskKind::from_str(meta?.get("task")?.as_str()?).ok()?;
    (!matches!(task, TaskKind::Sft | TaskKind::Chat)).then_some(task)
}

/// Loads one model with everything it can serve.
pub fn load(
    m: &ModelSpec,
    settings: &LoadSettings,
    metrics: &Arc<Metrics>,
    pool: Option<&Arc<ThreadPool>>,
) -> Result<ServedModel> {
    let source = tasklm_hub::resolve(&m.spec, settings.progress).map_err(|e| model_error(m, e))?;
    let kind = tasklm_hub::model_kind(&source).map_err(|e| model_error(m, e))?;
    let meta = tasklm_tasks::common::tasklm_json::model_meta(&source);
    let task = match trained_task(meta.as_ref()) {
        Some(task) => {
            let predictor = tasklm_tasks::predictor(&PredictJob::new(task, &m.spec))
                .map_err(|e| model_error(m, e))?;
            Some(TaskServer { task, predictor })
        }
        None => None,
    };
    let (mut generator, mut embedder) = (None, None);
    match kind {
        ModelKind::Decoder => {
            let opts = LoadOptions {
                quantized: settings.quantized && matches!(source, ModelSource::Gguf(_)),
                ..LoadOptions::default()
            };
            let spec = source.path().to_string_lossy().to_string();
            let mut decoder = tasklm_hub::load_decoder_with(&spec, opts, settings.progress)
                .map_err(|e| model_error(m, e))?;
            let template = tasklm_tasks::chat::resolve_template(
                &mut decoder.tokenizer,
                settings.template.as_deref(),
                meta.as_ref(),
            )
            .map_err(|e| e.to_string());
            if let (Some(t), Err(why)) = (&settings.template, &template) {
                return Err(ServeError::Invalid(format!("--template {t}: {why}")));
            }
            let decoder = Arc::new(decoder);
            let engine = Engine::start(
                decoder.clone(),
                settings.engine,
                metrics.clone(),
                pool.cloned(),
            )
            .map_err(|e| ServeError::Io {
                what: format!("starting the engine thread of `{}`", m.name),
                source: e,
            })?;
            generator = Some(Generator {
                decoder,
                template,
                engine,
            });
        }
        ModelKind::Encoder => {
            embedder = Some(Embedder::load(&source).map_err(|e| model_error(m, e))?);
        }
        // An encoder-decoder answers the task it was trained for (translate, summarize) on
        // `/v1/tasks/{task}`, through the predictor loaded above; it has no chat or
        // completions endpoint (those run on the decoder engine).
        ModelKind::Seq2Seq if task.is_some() => {}
        ModelKind::Seq2Seq => {
            return Err(ServeError::Invalid(format!(
                "model `{}` ({}): an encoder-decoder is served on the endpoint of the task \
                 tasklm trained it for (/v1/tasks/translate or /v1/tasks/summarize, named by \
                 its tasklm.json), and this one has no tasklm.json; `tasklm generate` and \
                 `tasklm predict --task translate|summarize` run it",
                m.name, m.spec
            )));
        }
        ModelKind::Vision => {
            return Err(ServeError::Invalid(format!(
                "model `{}` ({}): vision encoders are not served",
                m.name, m.spec
            )));
        }
    }
    Ok(ServedModel {
        name: m.name.clone(),
        spec: m.spec.clone(),
        created: crate::openai::unix_secs(),
        generator,
        embedder,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_take_a_name_or_the_last_path_component() {
        let m: ModelSpec = "chat=/models/smol".parse().unwrap();
        assert_eq!((m.name.as_str(), m.spec.as_str()), ("chat", "/models/smol"));
        let m: ModelSpec = "/models/run-3/".parse().unwrap();
        assert_eq!(m.name, "run-3");
        let m: ModelSpec = "/m/smollm2.Q4_1.gguf".parse().unwrap();
        assert_eq!(m.name, "smollm2.Q4_1");
        let m: ModelSpec = "smollm2-135m-instruct".parse().unwrap();
        assert_eq!(m.name, "smollm2-135m-instruct");
        assert!("x=".parse::<ModelSpec>().is_err());
    }
}
