//! The HTTP application: shared state, the router, and the layers every request passes (API
//! keys, the body limit, request metrics).

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openai::fields::{ApiResult, Fields};
use crate::served::ServedModel;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rayon::ThreadPool;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tasklm_tasks::TaskKind;
use tokio::sync::Semaphore;

/// Request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body, in bytes (413 past it).
    pub max_body: usize,
    /// Most tokens one request may generate.
    pub max_tokens: usize,
    /// Requests that may wait for the compute pool (embeddings, tasks); 429 past it.
    pub max_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 4 << 20,
            max_tokens: 2048,
            max_queue: 256,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    models: OnceLock<Vec<Arc<ServedModel>>>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// SHA-256 of each accepted API key (compared in constant time; the keys are not kept).
    key_digests: Vec<[u8; 32]>,
    compute_slots: Arc<Semaphore>,
    pool: Option<Arc<ThreadPool>>,
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Equality of two digests in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl AppState {
    pub fn new(
        limits: Limits,
        api_keys: &[String],
        metrics: Arc<Metrics>,
        pool: Option<Arc<ThreadPool>>,
    ) -> Self {
        Self {
            models: OnceLock::new(),
            metrics,
            limits,
            key_digests: api_keys.iter().map(|k| digest(k.as_bytes())).collect(),
            compute_slots: Arc::new(Semaphore::new(limits.max_queue.max(1))),
            pool,
        }
    }

    /// Makes the models available (the server is ready from now on).
    pub fn set_models(&self, models: Vec<ServedModel>) {
        let _ = self.models.set(models.into_iter().map(Arc::new).collect());
    }

    pub fn is_ready(&self) -> bool {
        self.models.get().is_some()
    }

    /// Every served model; 503 while they load.
    pub fn models(&self) -> ApiResult<&[Arc<ServedModel>]> {
        self.models
            .get()
            .map(Vec::as_slice)
            .ok_or_else(|| ApiError::unavailable("the models are still loading; retry shortly"))
    }

    fn names(&self) -> Vec<String> {
        self.models()
            .map(|m| m.iter().map(|m| m.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The model named `name` (404 naming the served ones).
    pub fn model(&self, name: &str) -> ApiResult<Arc<ServedModel>> {
        self.models()?
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| ApiError::model_not_found(name, &self.names()))
    }

    /// The model a request's `model` field names; when absent, the only model served.
    pub fn model_for(&self, f: &mut Fields) -> ApiResult<Arc<ServedModel>> {
        match f.string("model")? {
            Some(name) => self.model(name),
            None => match self.models()? {
                [only] => Ok(only.clone()),
                _ => Err(ApiError::invalid(
                    "model",
                    format!("`model` is required: one of {}", self.names().join(", ")),
                )),
            },
        }
    }

    /// The one model that answers `task`, for requests that name none.
    pub fn only_model_for_task(&self, task: TaskKind) -> ApiResult<Arc<ServedModel>> {
        let found: Vec<&Arc<ServedModel>> = self
            .models()?
            .iter()
            .filter(|m| m.task.as_ref().is_some_and(|t| t.task == task))
            .collect();
        match found.as_slice() {
            [only] => Ok((*only).clone()),
            [] => Err(ApiError::not_found(format!(
                "no served model answers the {task} task; served models: {}",
                self.names().join(", ")
            ))),
            _ => Err(ApiError::invalid(
                "model",
                format!("several models answer the {task} task: name one with `model`"),
            )),
        }
    }

    /// Runs `f` on the compute pool, off the HTTP threads; 429 when `max_queue` calls already
    /// wait.
    pub async fn compute<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let permit = self
            .compute_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::queue_full(self.limits.max_queue))?;
        let pool = self.pool.clone();
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match pool {
                Some(p) => p.install(f),
                None => f(),
            }
        })
        .await
        .map_err(|e| ApiError::internal(format!("the computation failed: {e}")))?;
        out
    }

    /// Stops every engine after its queued and running requests.
    pub fn shutdown_engines(&self) {
        if let Some(models) = self.models.get() {
            for m in models {
                if let Some(g) = &m.generator {
                    g.engine.shutdown();
                }
            }
        }
    }
}

/// A JSON request body read within the body limit: 413 past it, 415 for another content type,
/// 400 (with line and column) for JSON that does not parse.
pub struct JsonBody(pub Value);

impl FromRequest<Arc<AppState>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            if !ct.starts_with("application/json") {
                return Err(ApiError::unsupported_media_type());
            }
        }
        let limit = state.limits.max_body;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::too_large(limit))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
    }
}

/// Paths answered without an API key.
const OPEN_PATHS: &[&str] = &["/health", "/openapi.json"];

async fn require_key(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if app.key_digests.is_empty() || OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| digest(k.trim().as_bytes()));
    let ok = given.is_some_and(|g| {
        // Every key is compared, so the time does not tell which one matched.
        app.key_digests
            .iter()
            .fold(false, |hit, k| same_digest(k, &g) | hit)
    });
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn count(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let r = next.run(req).await;
    app.metrics.count_request(&endpoint, r.status().as_u16());
    let streaming = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        app.metrics.request_duration.observe(started.elapsed());
    }
    r
}

async fn health(State(app): State<Arc<AppState>>) -> Response {
    if app.is_ready() {
        axum::Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn openapi(State(app): State<Arc<AppState>>) -> Response {
    let models = app.models().unwrap_or(&[]);
    let named = |f: fn(&ServedModel) -> bool| -> Vec<String> {
        models
            .iter()
            .filter(|m| f(m))
            .map(|m| m.name.clone())
            .collect()
    };
    let mut tasks: Vec<String> = models
        .iter()
        .filter_map(|m| m.task.as_ref().map(|t| t.task.to_string()))
        .collect();
    tasks.dedup();
    let doc = crate::openapi::document(
        &named(|m| m.generator.is_some()),
        &named(|m| m.embedder.is_some()),
        &tasks,
        app.limits.max_tokens,
    );
    axum::Json(doc).into_response()
}

async fn not_found() -> Response {
    ApiError::not_found("no such endpoint; see GET /openapi.json").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed().into_response()
}

/// The router with every endpoint and layer.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/models", get(crate::openai::models::list))
        .route("/v1/models/{id}", get(crate::openai::models::one))
        .route("/v1/chat/completions", post(crate::openai::chat::handle))
        .route("/v1/completions", post(crate::openai::completions::handle))
        .route("/v1/embeddings", post(crate::openai::embeddings::handle))
        .route("/v1/tasks/{task}", post(crate::tasks::handle))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_equal_only_when_equal() {
        let a = digest(b"secret");
        assert!(same_digest(&a, &digest(b"secret")));
        assert!(!same_digest(&a, &digest(b"secreT")));
    }
}
