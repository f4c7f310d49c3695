//! Helpers of the API tests: a server state over the committed tiny models, and requests
//! answered by the router in process.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tasklm_serve::{AppState, EngineOptions, Limits, LoadSettings, ModelSpec};
use tower::ServiceExt;

pub fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A state serving the tiny decoder as `tiny` and the tiny encoder as `enc`.
pub fn state_with(limits: Limits, keys: &[&str], engine: EngineOptions) -> Arc<AppState> {
    state_on(limits, keys, engine, None)
}

/// [`state_with`], its tensor math on `pool`.
pub fn state_on(
    limits: Limits,
    keys: &[&str],
    engine: EngineOptions,
    pool: Option<Arc<rayon::ThreadPool>>,
) -> Arc<AppState> {
    let metrics = Arc::new(tasklm_serve::metrics::Metrics::default());
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let state = Arc::new(AppState::new(limits, &keys, metrics.clone(), pool.clone()));
    let settings = LoadSettings {
        engine,
        ..LoadSettings::default()
    };
    let models = ["tiny", "enc"]
        .iter()
        .zip(["tiny_decoder", "tiny_encoder"])
        .map(|(name, dir)| {
            let spec = ModelSpec {
                name: name.to_string(),
                spec: fixture(dir),
            };
            tasklm_serve::served::load(&spec, &settings, &metrics, pool.as_ref()).unwrap()
        })
        .collect();
    state.set_models(models);
    state
}

pub fn state() -> Arc<AppState> {
    state_with(
        Limits::default(),
        &[],
        EngineOptions {
            max_batch: 8,
            max_queue: 16,
        },
    )
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The `data:` payloads of a server-sent event stream.
    pub fn events(&self) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(String::from)
            .collect()
    }
}

pub async fn send(state: &Arc<AppState>, req: Request<Body>) -> Answer {
    let r = tasklm_serve::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// The OpenAI error fields of an answer, checked for shape.
pub fn error_of(a: &Answer) -> Value {
    let v = a.json();
    let e = &v["error"];
    assert!(e["message"].is_string(), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    e.clone()
}
