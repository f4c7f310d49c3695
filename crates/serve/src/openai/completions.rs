//! `POST /v1/completions`: raw prompts (text or token ids, one or several), the same
//! generation options as chat, and the legacy answer shape (`text`, integer `logprobs` with
//! `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`).

use super::fields::{is_false, is_one, ApiResult, Fields};
use super::respond::{self, finish_name, Choice, Meta, Shape};
use super::sampling::{self, LogprobsField};
use crate::app::{AppState, JsonBody};
use crate::engine::Job;
use crate::error::ApiError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tasklm_generate::{FinishReason, TokenLogprob};
use tasklm_text::TextTokenizer;

/// The most prompts one request may carry.
const MAX_PROMPTS: usize = 64;

/// The prompts of a request as token ids: a string, an array of strings, an array of token
/// ids, or an array of such arrays.
pub fn read_prompts(v: &Value, tok: &TextTokenizer) -> ApiResult<Vec<Vec<u32>>> {
    let vocab = tok.vocab_size() as u64;
    let ids = |arr: &[Value], at: &str| -> ApiResult<Vec<u32>> {
        arr.iter()
            .enumerate()
            .map(|(i, x)| match x.as_u64() {
                Some(id) if id < vocab => Ok(id as u32),
                _ => Err(ApiError::invalid(
                    &format!("{at}[{i}]"),
                    format!("`{at}[{i}]` must be a token id below {vocab}"),
                )),
            })
            .collect()
    };
    let text = |s: &str| {
        tok.encode(s, false)
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))
    };
    let prompts = match v {
        Value::String(s) => vec![text(s)?],
        Value::Array(a) if a.is_empty() => {
            return Err(ApiError::invalid("prompt", "`prompt` must not be empty"))
        }
        Value::Array(a) if a.iter().all(Value::is_number) => vec![ids(a, "prompt")?],
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, p) in a.iter().enumerate() {
                out.push(match p {
                    Value::String(s) => text(s)?,
                    Value::Array(inner) => ids(inner, &format!("prompt[{i}]"))?,
                    _ => {
                        return Err(ApiError::invalid(
                            &format!("prompt[{i}]"),
                            format!("`prompt[{i}]` must be a string or an array of token ids"),
                        ))
                    }
                });
            }
            out
        }
        _ => {
            return Err(ApiError::invalid(
                "prompt",
                "`prompt` must be a string, an array of strings, or token ids",
            ))
        }
    };
    if prompts.len() > MAX_PROMPTS {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "at most {MAX_PROMPTS} prompts per request, got {}",
                prompts.len()
            ),
        ));
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(ApiError::invalid(
            "prompt",
            format!("prompt {i} has no tokens: give at least one"),
        ));
    }
    Ok(prompts)
}

pub struct CompletionShape;

/// The legacy logprobs object; `offset` is where the first token's text starts.
fn legacy_logprobs(lp: &[TokenLogprob], offset: usize) -> Value {
    let mut at = offset;
    let mut offsets = Vec::with_capacity(lp.len());
    for t in lp {
        offsets.push(at);
        at += t.token.len();
    }
    json!({
        "tokens": lp.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lp.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": lp.iter().map(|t| {
            let mut m = Map::new();
            for a in &t.top_logprobs {
                m.insert(a.token.clone(), json!(a.logprob));
            }
            Value::Object(m)
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

impl Shape for CompletionShape {
    const OBJECT: &'static str = "text_completion";
    const CHUNK_OBJECT: &'static str = "text_completion";
    const ID_PREFIX: &'static str = "cmpl-";

    fn choice(&self, index: usize, c: &Choice) -> Value {
        json!({
            "index": index,
            "text": c.text,
            "logprobs": if c.wants_logprobs { legacy_logprobs(&c.logprobs, 0) } else { Value::Null },
            "finish_reason": c.finish.map(finish_name),
        })
    }

    fn opening_delta(&self, _index: usize) -> Option<Value> {
        None
    }

    fn delta(
        &self,
        index: usize,
        text: &str,
        logprobs: Option<&[TokenLogprob]>,
        offset: usize,
        finish: Option<FinishReason>,
    ) -> Value {
        json!({
            "index": index,
            "text": text,
            "logprobs": match logprobs {
                Some(lp) if !lp.is_empty() => legacy_logprobs(lp, offset),
                _ => Value::Null,
            },
            "finish_reason": finish.map(finish_name),
        })
    }
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
    let generator = model.generator.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "model",
            format!(
                "`{}` is not a generative model; it serves {}",
                model.name,
                model.capabilities().join(", ")
            ),
        )
    })?;
    let prompts = read_prompts(f.required("prompt")?, &generator.decoder.tokenizer)?;
    let mut g = sampling::read(&mut f, LogprobsField::Legacy)?;
    // The legacy endpoint's default length is OpenAI's 16 tokens.
    if g.max_tokens.is_none() {
        g.max_tokens = Some(16.min(app.limits.max_tokens));
    }
    f.only_neutral("echo", is_false)?;
    f.only_neutral("best_of", is_one)?;
    f.only_neutral("suffix", |v| v.as_str() == Some(""))?;
    f.finish()?;
    let mut budget = usize::MAX;
    for (i, p) in prompts.iter().enumerate() {
        let at = if prompts.len() == 1 {
            "prompt".to_string()
        } else {
            format!("prompt[{i}]")
        };
        budget = budget.min(sampling::token_budget(
            &g,
            p.len(),
            generator.context(),
            app.limits.max_tokens,
            &at,
        )?);
    }
    let mut params = g.params.clone();
    params.max_new_tokens = budget;
    let n = prompts.len() * g.n;
    let prompt_tokens: usize = prompts.iter().map(Vec::len).sum();
    let (jobs, rx) = Job::batch(&prompts, &params, g.n);
    generator.engine.submit(jobs)?;
    app.metrics
        .prompt_tokens
        .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
    let meta = Meta::new::<CompletionShape>(&model.name, prompt_tokens);
    if g.stream {
        return Ok(respond::stream(
            CompletionShape,
            rx,
            n,
            meta,
            g.include_usage,
            app.metrics.clone(),
        )
        .into_response());
    }
    let choices = respond::collect(rx, n, params.logprobs).await?;
    Ok(axum::Json(respond::body(&CompletionShape, &meta, &choices)).into_response())
}
