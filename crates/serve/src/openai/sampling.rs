//! The generation fields chat and completion requests share, read into [`SamplingParams`].

use super::fields::{is_empty_container, is_zero, ApiResult, Fields};
use crate::error::ApiError;
use serde_json::Value;
use tasklm_generate::SamplingParams;

/// The most choices (`n`) one request may ask for.
pub const MAX_CHOICES: i64 = 8;

/// What a generation request asks for, besides its prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub params: SamplingParams,
    /// `max_tokens` as given (None: as many as the context and the server's cap allow).
    pub max_tokens: Option<usize>,
    /// The field `max_tokens` came from, for error messages.
    pub max_tokens_field: &'static str,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
}

/// How a request asks for logprobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogprobsField {
    /// Chat: `logprobs: bool` with `top_logprobs: 0..=20`.
    Chat,
    /// Legacy completions: `logprobs: 0..=5` (the number of alternatives).
    Legacy,
}

/// Reads the sampling fields (OpenAI's defaults: temperature 1, top_p 1; llama.cpp's and
/// vLLM's extensions `top_k`, `min_p`, `repetition_penalty` off unless given).
pub fn read(f: &mut Fields, logprobs: LogprobsField) -> ApiResult<Generation> {
    let mut p = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repetition_penalty: 1.0,
        seed: super::fresh_u64(),
        ..SamplingParams::default()
    };
    if let Some(t) = f.number("temperature", 0.0, 2.0)? {
        p.temperature = t as f32;
    }
    if let Some(x) = f.number("top_p", 0.0, 1.0)? {
        if x <= 0.0 {
            return Err(ApiError::invalid("top_p", "`top_p` must be greater than 0"));
        }
        p.top_p = x as f32;
    }
    if let Some(k) = f.integer("top_k", -1, 1_000_000)? {
        p.top_k = k.max(0) as usize; // -1 is vLLM's "off"
    }
    if let Some(x) = f.number("min_p", 0.0, 1.0)? {
        p.min_p = x as f32;
    }
    if let Some(x) = f.number("repetition_penalty", 0.0, 10.0)? {
        if x <= 0.0 {
            return Err(ApiError::invalid(
                "repetition_penalty",
                "`repetition_penalty` must be greater than 0",
            ));
        }
        p.repetition_penalty = x as f32;
    }
    if let Some(s) = f.integer("seed", i64::MIN, i64::MAX)? {
        p.seed = s as u64;
    }
    p.stop = f.stop()?;
    let n = f.integer("n", 1, MAX_CHOICES)?.unwrap_or(1) as usize;
    let (mut max_tokens, mut max_tokens_field) = (None, "max_tokens");
    for name in ["max_completion_tokens", "max_tokens"] {
        if let Some(m) = f.integer(name, 1, i64::from(u32::MAX))? {
            if max_tokens.is_some() {
                return Err(ApiError::invalid(
                    name,
                    "give `max_tokens` or `max_completion_tokens`, not both",
                ));
            }
            max_tokens = Some(m as usize);
            max_tokens_field = name;
        }
    }
    match logprobs {
        LogprobsField::Chat => {
            p.logprobs = f.boolean("logprobs")?.unwrap_or(false);
            if let Some(k) = f.integer("top_logprobs", 0, 20)? {
                if !p.logprobs {
                    return Err(ApiError::invalid(
                        "top_logprobs",
                        "`top_logprobs` needs `logprobs: true`",
                    ));
                }
                p.top_logprobs = k as usize;
            }
        }
        LogprobsField::Legacy => {
            if let Some(k) = f.integer("logprobs", 0, 5)? {
                p.logprobs = true;
                p.top_logprobs = k as usize;
            }
        }
    }
    let stream = f.boolean("stream")?.unwrap_or(false);
    let include_usage = match f.raw("stream_options") {
        None => false,
        Some(Value::Object(o)) => {
            if !stream {
                return Err(ApiError::invalid(
                    "stream_options",
                    "`stream_options` is only allowed with `stream: true`",
                ));
            }
            for k in o.keys() {
                if k != "include_usage" && k != "continuous_usage_stats" {
                    return Err(ApiError::unsupported(
                        &format!("stream_options.{k}"),
                        format!("unsupported field `stream_options.{k}`"),
                    ));
                }
            }
            match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::invalid(
                        "stream_options.include_usage",
                        "`stream_options.include_usage` must be a boolean",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "stream_options",
                "`stream_options` must be an object",
            ))
        }
    };
    // Fields accepted only at the value that changes nothing.
    f.only_neutral("presence_penalty", is_zero)?;
    f.only_neutral("frequency_penalty", is_zero)?;
    f.only_neutral("logit_bias", is_empty_container)?;
    Ok(Generation {
        params: p,
        max_tokens,
        max_tokens_field,
        n,
        stream,
        include_usage,
    })
}

/// The tokens a request may generate: `max_tokens` if it fits the context and the server's cap,
/// else a 400 that says the lengths; without `max_tokens`, what is left of both.
pub fn token_budget(
    g: &Generation,
    prompt_tokens: usize,
    context: usize,
    cap: usize,
    prompt_field: &str,
) -> ApiResult<usize> {
    if prompt_tokens >= context {
        return Err(ApiError::context_exceeded(
            prompt_field,
            format!(
                "the prompt is {prompt_tokens} tokens, and this model's context window is \
                 {context} tokens (room is needed for at least one generated token)"
            ),
        ));
    }
    let room = context - prompt_tokens;
    match g.max_tokens {
        Some(m) if m > cap => Err(ApiError::invalid(
            g.max_tokens_field,
            format!(
                "`{}` is {m}, over this server's limit of {cap} tokens per request (--max-tokens)",
                g.max_tokens_field
            ),
        )),
        Some(m) if m > room => Err(ApiError::context_exceeded(
            g.max_tokens_field,
            format!(
                "this model's context window is {context} tokens, and {} were asked for: \
                 {prompt_tokens} in the prompt and {m} to generate",
                prompt_tokens + m
            ),
        )),
        Some(m) => Ok(m),
        None => Ok(room.min(cap)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_body(body: Value) -> ApiResult<Generation> {
        let mut f = Fields::new(&body)?;
        let g = read(&mut f, LogprobsField::Chat)?;
        f.finish()?;
        Ok(g)
    }

    #[test]
    fn openai_defaults_and_extensions() {
        let g = read_body(json!({"seed": 7, "top_k": 40, "min_p": 0.1, "max_tokens": 5})).unwrap();
        assert_eq!(g.params.temperature, 1.0);
        assert_eq!(g.params.top_k, 40);
        assert_eq!(g.params.seed, 7);
        assert_eq!(g.max_tokens, Some(5));
        assert_eq!(g.n, 1);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = read_body(json!({"n": 9})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = read_body(json!({"top_logprobs": 3})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("top_logprobs"));
        let e = read_body(json!({"stream_options": {"include_usage": true}})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stream_options"));
        let e = read_body(json!({"frequency_penalty": 1.0})).unwrap_err();
        assert_eq!(e.code, Some("unsupported_parameter"));
        let e = read_body(json!({"max_tokens": 0})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn the_budget_says_both_lengths() {
        let g = read_body(json!({"max_tokens": 100})).unwrap();
        let e = token_budget(&g, 30, 64, 1000, "messages").unwrap_err();
        assert_eq!(e.code, Some("context_length_exceeded"));
        assert!(
            e.message.contains("64") && e.message.contains("30"),
            "{}",
            e.message
        );
        let e = token_budget(&g, 70, 64, 1000, "messages").unwrap_err();
        assert!(e.message.contains("70 tokens"), "{}", e.message);
        assert_eq!(token_budget(&g, 10, 512, 1000, "messages").unwrap(), 100);
        let g = read_body(json!({})).unwrap();
        assert_eq!(token_budget(&g, 10, 512, 64, "messages").unwrap(), 64);
        let g = read_body(json!({"max_tokens": 100})).unwrap();
        let e = token_budget(&g, 10, 512, 64, "messages").unwrap_err();
        assert!(e.message.contains("--max-tokens"));
    }
}
