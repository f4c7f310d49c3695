//! `POST /v1/chat/completions`: messages through the model's chat template (the renderer
//! training uses), generation on the model's engine, OpenAI's answer or stream.

use super::fields::{is_empty_container, ApiResult, Fields};
use super::respond::{self, finish_name, Choice, Meta, Shape};
use super::sampling::{self, LogprobsField};
use crate::app::{AppState, JsonBody};
use crate::engine::Job;
use crate::error::ApiError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tasklm_generate::{FinishReason, TokenLogprob};
use tasklm_text::ChatMessage;

const ROLES: &[&str] = &["system", "developer", "user", "assistant"];

/// The conversation of a request: each message's role and text (content parts of type `text`
/// are joined; `developer` is read as `system`).
pub fn read_messages(v: &Value) -> ApiResult<Vec<ChatMessage>> {
    let list = v
        .as_array()
        .ok_or_else(|| ApiError::invalid("messages", "`messages` must be an array"))?;
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let at = |f: &str| format!("messages[{i}].{f}");
        let obj = m.as_object().ok_or_else(|| {
            ApiError::invalid(
                &format!("messages[{i}]"),
                format!("`messages[{i}]` must be an object"),
            )
        })?;
        for k in obj.keys() {
            if !["role", "content", "name"].contains(&k.as_str()) {
                return Err(ApiError::unsupported(
                    &at(k),
                    format!("unsupported field `{}`", at(k)),
                ));
            }
        }
        let role = obj.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(&at("role"), format!("`{}` must be a string", at("role")))
        })?;
        if !ROLES.contains(&role) {
            return Err(ApiError::invalid(
                &at("role"),
                format!(
                    "`{}` is `{role}`: expected one of {}",
                    at("role"),
                    ROLES.join(", ")
                ),
            ));
        }
        let content = match obj.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let part = format!("messages[{i}].content[{j}]");
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        _ => {
                            return Err(ApiError::invalid(
                                &part,
                                format!("`{part}` must be {{\"type\": \"text\", \"text\": \"...\"}}: this model reads text only"),
                            ))
                        }
                    }
                }
                text
            }
            _ => {
                return Err(ApiError::invalid(
                    &at("content"),
                    format!(
                        "`{}` must be a string or an array of text parts",
                        at("content")
                    ),
                ))
            }
        };
        let role = if role == "developer" { "system" } else { role };
        out.push(ChatMessage::new(role, &content));
    }
    Ok(out)
}

pub struct ChatShape;

fn logprob_entries(lp: &[TokenLogprob]) -> Value {
    Value::Array(
        lp.iter()
            .map(|t| {
                json!({
                    "token": t.token, "logprob": t.logprob, "bytes": t.bytes,
                    "top_logprobs": t.top_logprobs.iter().map(|a| json!({
                        "token": a.token, "logprob": a.logprob, "bytes": a.bytes,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

impl Shape for ChatShape {
    const OBJECT: &'static str = "chat.completion";
    const CHUNK_OBJECT: &'static str = "chat.completion.chunk";
    const ID_PREFIX: &'static str = "chatcmpl-";

    fn choice(&self, index: usize, c: &Choice) -> Value {
        json!({
            "index": index,
            "message": {"role": "assistant", "content": c.text, "refusal": null},
            "logprobs": if c.wants_logprobs {
                json!({"content": logprob_entries(&c.logprobs), "refusal": null})
            } else { Value::Null },
            "finish_reason": c.finish.map(finish_name),
        })
    }

    fn opening_delta(&self, index: usize) -> Option<Value> {
        Some(
            json!({"index": index, "delta": {"role": "assistant", "content": ""},
                    "logprobs": null, "finish_reason": null}),
        )
    }

    fn delta(
        &self,
        index: usize,
        text: &str,
        logprobs: Option<&[TokenLogprob]>,
        _offset: usize,
        finish: Option<FinishReason>,
    ) -> Value {
        let delta = if finish.is_some() {
            json!({})
        } else {
            json!({"content": text})
        };
        json!({
            "index": index,
            "delta": delta,
            "logprobs": match logprobs {
                Some(lp) if !lp.is_empty() => json!({"content": logprob_entries(lp), "refusal": null}),
                _ => Value::Null,
            },
            "finish_reason": finish.map(finish_name),
        })
    }
}

/// Fields accepted only at the value that means plain text generation.
fn plain_text_only(f: &mut Fields) -> ApiResult<()> {
    f.only_neutral("tools", is_empty_container)?;
    f.only_neutral("functions", is_empty_container)?;
    f.only_neutral("tool_choice", |v| v == "none" || v == "auto")?;
    f.only_neutral("response_format", |v| {
        v.get("type").and_then(Value::as_str) == Some("text")
    })?;
    f.only_neutral("modalities", |v| v == &json!(["text"]))?;
    Ok(())
}

pub async fn handle(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body)?;
    let model = app.model_for(&mut f)?;
    let generator = model.as_generator()?;
    let messages = read_messages(f.required("messages")?)?;
    let g = sampling::read(&mut f, LogprobsField::Chat)?;
    plain_text_only(&mut f)?;
    f.finish()?;
    let template = generator.template.as_ref().map_err(|why| {
        ApiError::invalid("model", format!("`{}` cannot chat: {why}", model.name))
    })?;
    let text = template
        .render(&messages, true)
        .map_err(|e| ApiError::invalid("messages", format!("the chat template failed: {e}")))?;
    let prompt = generator
        .decoder
        .tokenizer
        .encode(&text, false)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
    let budget = sampling::token_budget(
        &g,
        prompt.len(),
        generator.context(),
        app.limits.max_tokens,
        "messages",
    )?;
    let mut params = g.params.clone();
    params.max_new_tokens = budget;
    let (jobs, rx) = Job::choices(&prompt, &params, g.n);
    generator.engine.submit(jobs)?;
    app.metrics
        .prompt_tokens
        .fetch_add(prompt.len() as u64, Ordering::Relaxed);
    let meta = Meta::new::<ChatShape>(&model.name, prompt.len());
    if g.stream {
        return Ok(respond::stream(
            ChatShape,
            rx,
            g.n,
            meta,
            g.include_usage,
            app.metrics.clone(),
        )
        .into_response());
    }
    let choices = respond::collect(rx, g.n, params.logprobs).await?;
    Ok(axum::Json(respond::body(&ChatShape, &meta, &choices)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_with_text_parts_and_roles_checked() {
        let m = read_messages(&json!([
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        ]))
        .unwrap();
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].content, "Hi there");
        let e = read_messages(&json!([{"role": "robot", "content": "x"}])).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = read_messages(&json!([{"role": "user", "content": [{"type": "image_url"}]}]))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
        let e = read_messages(&json!([{"role": "user", "content": "x", "tool_calls": []}]))
            .unwrap_err();
        assert_eq!(e.code, Some("unsupported_parameter"));
        assert!(read_messages(&json!([])).is_err());
    }
}
