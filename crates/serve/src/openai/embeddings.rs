//! `POST /v1/embeddings`: an encoder's sentence vectors (mean pooling and normalisation as
//! sentence-transformers does), as float arrays or base64 (little-endian f32, which the
//! official client asks for when the caller does not say).

use super::fields::{ApiResult, Fields};
use crate::app::{AppState, JsonBody};
use crate::error::ApiError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The most inputs one request may carry (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

enum Input {
    Text(String),
    Ids(Vec<u32>),
}

fn read_inputs(v: &Value, vocab: usize) -> ApiResult<Vec<Input>> {
    let ids = |a: &[Value], at: &str| -> ApiResult<Input> {
        a.iter()
            .enumerate()
            .map(|(i, x)| match x.as_u64() {
                Some(id) if (id as usize) < vocab => Ok(id as u32),
                _ => Err(ApiError::invalid(
                    &format!("{at}[{i}]"),
                    format!("`{at}[{i}]` must be a token id below {vocab}"),
                )),
            })
            .collect::<ApiResult<Vec<u32>>>()
            .map(Input::Ids)
    };
    let out = match v {
        Value::String(s) => vec![Input::Text(s.clone())],
        Value::Array(a) if a.is_empty() => {
            return Err(ApiError::invalid("input", "`input` must not be empty"))
        }
        Value::Array(a) if a.iter().all(Value::is_number) => vec![ids(a, "input")?],
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(Input::Text(s.clone())),
                Value::Array(inner) => ids(inner, &format!("input[{i}]")),
                _ => Err(ApiError::invalid(
                    &format!("input[{i}]"),
                    format!("`input[{i}]` must be a string or an array of token ids"),
                )),
            })
            .collect::<ApiResult<Vec<Input>>>()?,
        _ => {
            return Err(ApiError::invalid(
                "input",
                "`input` must be a string, an array of strings, or token ids",
            ))
        }
    };
    if out.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("at most {MAX_INPUTS} inputs per request, got {}", out.len()),
        ));
    }
    Ok(out)
}

pub async fn handle(State(app): State<Arc<AppState>>, JsonBody(body): JsonBody) -> Response {
    match answer(&app, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(app: &Arc<AppState>, body: &Value) -> ApiResult<Response> {
    let mut f = Fields::new(body)?;
    let model = app.model_for(&mut f)?;
    let embedder = model.embedder.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "model",
            format!(
                "`{}` is not an embedding model; it serves {}",
                model.name,
                model.capabilities().join(", ")
            ),
        )
    })?;
    let inputs = read_inputs(f.required("input")?, embedder.vocab_size())?;
    let base64 = match f.string("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`encoding_format` is `{other}`: expected float or base64"),
            ))
        }
    };
    if let Some(d) = f.integer("dimensions", 1, i64::from(u32::MAX))? {
        if d as usize != embedder.dims {
            return Err(ApiError::unsupported(
                "dimensions",
                format!(
                    "`{}` gives {}-dimensional vectors only",
                    model.name, embedder.dims
                ),
            ));
        }
    }
    f.finish()?;
    let ids: Vec<Vec<u32>> = inputs
        .into_iter()
        .map(|i| match i {
            Input::Ids(v) => Ok(v),
            Input::Text(t) => embedder
                .tokenize(&t)
                .map_err(|e| ApiError::invalid("input", e.to_string())),
        })
        .collect::<ApiResult<_>>()?;
    let m = model.clone();
    let (vectors, tokens) = app
        .compute(move || {
            m.embedder
                .as_ref()
                .ok_or_else(|| ApiError::internal("the model lost its embedder"))?
                .embed(&ids)
                .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))
        })
        .await?;
    app.metrics
        .prompt_tokens
        .fetch_add(tokens as u64, Ordering::Relaxed);
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": model.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}
