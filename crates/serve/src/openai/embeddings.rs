//! `POST /v1/embeddings`: an encoder's sentence vectors (mean pooling and normalisation as
//! sentence-transformers does), as float arrays or base64 (little-endian f32, which the
//! official client asks for when the caller does not say).

use super::fields::{token_sequences, ApiResult, Fields};
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

pub async fn handle(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body)?;
    let model = app.model_for(&mut f)?;
    let embedder = model.as_embedder()?;
    let ids = token_sequences(
        f.required("input")?,
        "input",
        embedder.vocab_size(),
        MAX_INPUTS,
        |t| {
            embedder
                .tokenize(t)
                .map_err(|e| ApiError::invalid("input", e.to_string()))
        },
    )?;
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
