//! `POST /v1/completions`: raw prompts (text or token ids, one or several), the same
//! generation options as chat, and the legacy answer shape (`text`, integer `logprobs` with
//! `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`).

use super::fields::{is_false, is_one, token_sequences, ApiResult, Fields};
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

/// The prompts of a request as token ids (see [`token_sequences`]), none of them empty.
pub fn read_prompts(v: &Value, tok: &TextTokenizer) -> ApiResult<Vec<Vec<u32>>> {
    let prompts = token_sequences(v, "prompt", tok.vocab_size(), MAX_PROMPTS, |s| {
        tok.encode(s, false)
            .map_err(|e| ApiError::invalid("prompt", e.to_string()))
    })?;
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

pub async fn handle(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body)?;
    let model = app.model_for(&mut f)?;
    let generator = model.as_generator()?;
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
