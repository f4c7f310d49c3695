//! `GET /v1/models` and `GET /v1/models/{id}`.

use crate::app::AppState;
use crate::served::ServedModel;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

fn entry(m: &ServedModel) -> Value {
    json!({
        "id": m.name,
        "object": "model",
        "created": m.created,
        "owned_by": "tasklm",
        "capabilities": m.capabilities(),
        "context_length": m.generator.as_ref().map(|g| g.context()),
    })
}

pub async fn list(State(app): State<Arc<AppState>>) -> Response {
    match app.models() {
        Ok(models) => axum::Json(json!({
            "object": "list",
            "data": models.iter().map(|m| entry(m)).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn one(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match app.model(&id) {
        Ok(m) => axum::Json(entry(&m)).into_response(),
        Err(e) => e.into_response(),
    }
}
