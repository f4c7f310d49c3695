//! `POST /v1/tasks/{task}`: what `tasklm predict` answers, over HTTP and in batches. The body is
//! `{"model": NAME, "input": RECORD}` or `{"model": NAME, "input": [RECORD, ...]}` with the
//! records `predict` reads (`{"text"}` for classify and ner, `{"premise", "hypothesis"}` for
//! nli, `{"question", "context"}` for qa, `{"prompt"}` or the task's fields for the generative
//! tasks); the answer is `{"model", "task", "output": ANSWER}` or `"output": [ANSWER, ...]`,
//! where a record that fails alone in a batch gets `{"error": {...}}` in its place.

use crate::app::{AppState, JsonBody};
use crate::error::ApiError;
use crate::openai::fields::{ApiResult, Fields};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;
use tasklm_tasks::TaskKind;

/// The most records one request may carry.
const MAX_RECORDS: usize = 256;

pub async fn handle(
    State(app): State<Arc<AppState>>,
    Path(task): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let kind = TaskKind::from_str(&task).map_err(|e| ApiError::not_found(e.to_string()))?;
    let mut f = Fields::new(&body)?;
    let model = match f.string("model")? {
        Some(name) => app.model(name)?,
        None => app.only_model_for_task(kind)?,
    };
    let served = model.task.as_ref().map(|t| t.task);
    if served != Some(kind) {
        return Err(model.cannot(&format!("does not answer the {kind} task")));
    }
    let input = f.required("input")?.clone();
    f.finish()?;
    let (records, batch) = match input {
        Value::Array(a) => (a, true),
        one => (vec![one], false),
    };
    if records.is_empty() || records.len() > MAX_RECORDS {
        return Err(ApiError::invalid(
            "input",
            format!(
                "`input` must hold 1 to {MAX_RECORDS} records, got {}",
                records.len()
            ),
        ));
    }
    let m = model.clone();
    let answers = app
        .compute(move || {
            let t = m
                .task
                .as_ref()
                .ok_or_else(|| ApiError::internal("the model lost its task"))?;
            Ok(t.predictor.predict_batch(&records))
        })
        .await?;
    let output = if batch {
        Value::Array(
            answers
                .into_iter()
                .enumerate()
                .map(|(i, a)| match a {
                    Ok(v) => v,
                    Err(e) => ApiError::invalid(&format!("input[{i}]"), e.to_string()).body(),
                })
                .collect(),
        )
    } else {
        match answers.into_iter().next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(ApiError::invalid("input", e.to_string())),
            None => return Err(ApiError::internal("the predictor gave no answer")),
        }
    };
    Ok(
        axum::Json(json!({"model": model.name, "task": kind.to_string(), "output": output}))
            .into_response(),
    )
}
