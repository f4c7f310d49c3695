//! The HTTP API answered in process (tower's `oneshot`) over the committed tiny models: every
//! endpoint's shape and every status code the server gives.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use tasklm_serve::{AppState, EngineOptions, Limits};

fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 8,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn health_is_503_while_loading_then_200() {
    let metrics = Arc::new(tasklm_serve::metrics::Metrics::default());
    let loading = Arc::new(AppState::new(Limits::default(), &[], metrics, None));
    let a = send(&loading, get("/health")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    let a = send(&loading, get("/v1/models")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_of(&a)["code"], "unavailable");
    let s = state();
    let a = send(&s, get("/health")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["status"], "ok");
}

#[tokio::test]
async fn models_are_listed_with_what_they_serve() {
    let s = state();
    let a = send(&s, get("/v1/models")).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny", "enc"]);
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(
        v["data"][0]["capabilities"],
        json!(["chat.completions", "completions"])
    );
    assert_eq!(v["data"][1]["capabilities"], json!(["embeddings"]));
    let a = send(&s, get("/v1/models/tiny")).await;
    assert_eq!(a.json()["id"], "tiny");
    let a = send(&s, get("/v1/models/nope")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&a)["code"], "model_not_found");
}

#[tokio::test]
async fn chat_answers_in_openai_shape_and_streams_the_same_text() {
    let s = state();
    let a = send(&s, post("/v1/chat/completions", &chat("hello", json!({})))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().unwrap().to_string();
    let reason = choice["finish_reason"].as_str().unwrap();
    assert!(reason == "stop" || reason == "length", "{v}");
    let usage = &v["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&completion), "{v}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );

    let body = chat(
        "hello",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let a = send(&s, post("/v1/chat/completions", &body)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.content_type.starts_with("text/event-stream"),
        "{}",
        a.content_type
    );
    let events = a.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text, "greedy stream = greedy answer");
    let last_choice = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(last_choice["finish_reason"], reason);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], completion);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
}

#[tokio::test]
async fn chat_logprobs_and_several_choices() {
    let s = state();
    let body = chat(
        "hi",
        json!({"logprobs": true, "top_logprobs": 3, "n": 2, "temperature": 1.0, "seed": 5}),
    );
    let a = send(&s, post("/v1/chat/completions", &body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        let content = c["logprobs"]["content"].as_array().unwrap();
        assert!(!content.is_empty());
        for t in content {
            assert!(t["logprob"].as_f64().unwrap() <= 0.0);
            assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 3);
            assert!(t["bytes"].is_array());
        }
    }
    // The same seed gives the same answer.
    let again = send(&s, post("/v1/chat/completions", &body)).await.json();
    assert_eq!(again["choices"], v["choices"]);
}

#[tokio::test]
async fn completions_answer_in_the_legacy_shape() {
    let s = state();
    let body = json!({"model": "tiny", "prompt": ["one two", "three"], "max_tokens": 5,
                      "temperature": 0, "logprobs": 2});
    let a = send(&s, post("/v1/completions", &body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert_eq!(v["object"], "text_completion");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for c in choices {
        let lp = &c["logprobs"];
        let n = lp["tokens"].as_array().unwrap().len();
        assert!((1..=5).contains(&n), "{lp}");
        assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n);
        assert_eq!(lp["text_offset"].as_array().unwrap().len(), n);
        assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 2);
    }
    // Without max_tokens the legacy default is 16 tokens.
    let body = json!({"model": "tiny", "prompt": "x", "temperature": 0});
    let v = send(&s, post("/v1/completions", &body)).await.json();
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() <= 16,
        "{v}"
    );
    // A stream of text chunks ends with [DONE].
    let body = json!({"model": "tiny", "prompt": "x", "max_tokens": 4, "stream": true});
    let a = send(&s, post("/v1/completions", &body)).await;
    let events = a.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "text_completion");
}

#[tokio::test]
async fn embeddings_are_unit_vectors_as_floats_or_base64() {
    let s = state();
    let body = json!({"model": "enc", "input": ["a cat", "a dog sat"]});
    let a = send(&s, post("/v1/embeddings", &body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let floats: Vec<f32> = data[1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let norm: f32 = floats.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let body =
        json!({"model": "enc", "input": ["a cat", "a dog sat"], "encoding_format": "base64"});
    let v = send(&s, post("/v1/embeddings", &body)).await.json();
    let b64 = v["data"][1]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, floats);
    // One input alone gives the vector it gets in a batch.
    let v = send(
        &s,
        post(
            "/v1/embeddings",
            &json!({"model": "enc", "input": "a dog sat"}),
        ),
    )
    .await
    .json();
    let alone: Vec<f32> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let cos = tasklm_serve::embed::cosine(&alone, &floats);
    assert!(cos > 1.0 - 1e-5, "cosine {cos}");
}

async fn expect(
    s: &Arc<AppState>,
    req: Request<Body>,
    status: StatusCode,
    param: Option<&str>,
) -> Value {
    let a = send(s, req).await;
    assert_eq!(a.status, status, "{}", a.text);
    let e = error_of(&a);
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{e}");
    }
    e
}

#[tokio::test]
async fn bad_requests_are_400s_that_name_the_field() {
    let s = state();
    let bad = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from("{\"model\": "))
        .unwrap();
    let e = expect(&s, bad, StatusCode::BAD_REQUEST, None).await;
    assert!(
        e["message"].as_str().unwrap().contains("not valid JSON"),
        "{e}"
    );
    let cases = [
        (chat("x", json!({"temperature": 3})), "temperature"),
        (chat("x", json!({"n": 9})), "n"),
        (chat("x", json!({"frobnicate": true})), "frobnicate"),
        (chat("x", json!({"tools": [{"type": "function"}]})), "tools"),
        (chat("x", json!({"stop": [1]})), "stop[0]"),
        (json!({"model": "tiny", "messages": "hi"}), "messages"),
        (
            json!({"model": "tiny", "messages": [{"role": "user"}]}),
            "messages[0].content",
        ),
        (json!({"model": "tiny"}), "messages"),
        (chat("x", json!({"max_tokens": 100000})), "max_tokens"),
    ];
    for (body, param) in cases {
        expect(
            &s,
            post("/v1/chat/completions", &body),
            StatusCode::BAD_REQUEST,
            Some(param),
        )
        .await;
    }
    // A field safe to ignore passes.
    let a = send(
        &s,
        post("/v1/chat/completions", &chat("x", json!({"user": "u1"}))),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    // Embeddings of a generative model, chat with an encoder.
    expect(
        &s,
        post("/v1/embeddings", &json!({"model": "tiny", "input": "x"})),
        StatusCode::BAD_REQUEST,
        Some("model"),
    )
    .await;
    expect(
        &s,
        post(
            "/v1/chat/completions",
            &json!({"model": "enc", "messages": [{"role": "user", "content": "x"}]}),
        ),
        StatusCode::BAD_REQUEST,
        Some("model"),
    )
    .await;
    expect(
        &s,
        post(
            "/v1/embeddings",
            &json!({"model": "enc", "input": "x", "encoding_format": "int8"}),
        ),
        StatusCode::BAD_REQUEST,
        Some("encoding_format"),
    )
    .await;
    expect(
        &s,
        post(
            "/v1/completions",
            &json!({"model": "tiny", "prompt": [999999]}),
        ),
        StatusCode::BAD_REQUEST,
        Some("prompt[0]"),
    )
    .await;
}

#[tokio::test]
async fn a_prompt_over_the_context_is_a_typed_400_with_both_lengths() {
    let s = state();
    // The tiny decoder's context is 512 tokens.
    let long = "word ".repeat(2000);
    let e = expect(
        &s,
        post("/v1/chat/completions", &chat(&long, json!({}))),
        StatusCode::BAD_REQUEST,
        Some("messages"),
    )
    .await;
    assert_eq!(e["code"], "context_length_exceeded");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("512"), "{m}");
    assert!(m.contains("the prompt is"), "{m}");
    let e = expect(
        &s,
        post(
            "/v1/completions",
            &json!({"model": "tiny", "prompt": "a b", "max_tokens": 600}),
        ),
        StatusCode::BAD_REQUEST,
        Some("max_tokens"),
    )
    .await;
    assert_eq!(e["code"], "context_length_exceeded");
}

#[tokio::test]
async fn unknown_models_and_paths_are_404_and_wrong_methods_405() {
    let s = state();
    let e = expect(
        &s,
        post(
            "/v1/chat/completions",
            &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
        ),
        StatusCode::NOT_FOUND,
        Some("model"),
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("tiny, enc"), "{e}");
    expect(&s, get("/v2/nothing"), StatusCode::NOT_FOUND, None).await;
    expect(
        &s,
        get("/v1/chat/completions"),
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    )
    .await;
    expect(
        &s,
        post("/v1/tasks/classfy", &json!({"input": {}})),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    expect(
        &s,
        post("/v1/tasks/classify", &json!({"input": {"text": "x"}})),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_other_types_415() {
    let s = state_with(
        Limits {
            max_body: 256,
            ..Limits::default()
        },
        &[],
        EngineOptions {
            max_batch: 4,
            max_queue: 4,
        },
    );
    let big = chat(&"x".repeat(1000), json!({}));
    expect(
        &s,
        post("/v1/chat/completions", &big),
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    )
    .await;
    let form = Request::post("/v1/chat/completions")
        .header("content-type", "text/plain")
        .body(Body::from("hi"))
        .unwrap();
    expect(&s, form, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
}

#[tokio::test]
async fn api_keys_are_required_except_for_health() {
    let s = state_with(
        Limits::default(),
        &["k-123"],
        EngineOptions {
            max_batch: 4,
            max_queue: 4,
        },
    );
    let e = expect(&s, get("/v1/models"), StatusCode::UNAUTHORIZED, None).await;
    assert_eq!(e["type"], "authentication_error");
    assert!(!e["message"].as_str().unwrap().contains("k-123"));
    let wrong = Request::get("/v1/models")
        .header("authorization", "Bearer k-124")
        .body(Body::empty())
        .unwrap();
    expect(&s, wrong, StatusCode::UNAUTHORIZED, None).await;
    let right = Request::get("/v1/models")
        .header("authorization", "Bearer k-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&s, right).await.status, StatusCode::OK);
    assert_eq!(send(&s, get("/health")).await.status, StatusCode::OK);
    expect(&s, get("/metrics"), StatusCode::UNAUTHORIZED, None).await;
}

#[tokio::test]
async fn metrics_count_requests_and_tokens() {
    let s = state();
    send(&s, post("/v1/chat/completions", &chat("hello", json!({})))).await;
    send(&s, get("/v1/models/nope")).await;
    let a = send(&s, get("/metrics")).await;
    assert!(a.content_type.starts_with("text/plain"));
    let t = a.text;
    assert!(
        t.contains("tasklm_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("tasklm_requests_total{endpoint=\"/v1/models/{id}\",status=\"404\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("tasklm_time_to_first_token_seconds_count 1"),
        "{t}"
    );
    assert!(!t.contains("tasklm_completion_tokens_total 0\n"), "{t}");
    assert!(t.contains("tasklm_queue_depth 0"), "{t}");
}

#[tokio::test]
async fn openapi_document_lists_every_endpoint() {
    let s = state();
    let v = send(&s, get("/openapi.json")).await.json();
    assert_eq!(v["openapi"], "3.0.3");
    for p in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/tasks/{task}",
        "/health",
        "/metrics",
    ] {
        assert!(v["paths"].get(p).is_some(), "{p} missing");
    }
}
