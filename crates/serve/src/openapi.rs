//! The OpenAPI 3.0 document served at `/openapi.json`: every endpoint with its request schema
//! and the error shape, so clients can be generated and the API fuzzed (Schemathesis).

use serde_json::{json, Value};

fn error_responses() -> Value {
    let e = json!({"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "400": e, "401": e, "404": e, "413": e, "415": e, "429": e, "503": e,
    })
}

fn ok(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}})
}

fn post(summary: &str, schema: &str) -> Value {
    let mut responses = error_responses();
    responses["200"] = ok("The answer (or server-sent events when `stream` is true)");
    json!({"post": {
        "summary": summary,
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
        "responses": responses,
    }})
}

fn sampling_properties(model: &Value, max_tokens: usize) -> Value {
    json!({
        "model": model,
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": max_tokens},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": max_tokens},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": -1},
        "min_p": {"type": "number", "minimum": 0, "maximum": 1},
        "repetition_penalty": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "maximum": 10},
        "seed": {"type": "integer"},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}]},
        "n": {"type": "integer", "minimum": 1, "maximum": super::openai::sampling::MAX_CHOICES},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "presence_penalty": {"type": "number"},
        "frequency_penalty": {"type": "number"},
        "logit_bias": {"type": "object"},
        "user": {"type": "string"},
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The document; `models` are the names requests may give (each endpoint's own), `tasks` the
/// task names the task endpoint answers, `max_tokens` the server's cap.
pub fn document(
    generators: &[String],
    embedders: &[String],
    tasks: &[String],
    max_tokens: usize,
) -> Value {
    let names = |n: &[String]| {
        if n.is_empty() {
            json!({"type": "string"})
        } else {
            json!({"type": "string", "enum": n})
        }
    };
    let (gen_model, emb_model) = (names(generators), names(embedders));
    let mut get_responses = error_responses();
    get_responses["200"] = ok("The answer");
    let get = |summary: &str| json!({"get": {"summary": summary, "responses": get_responses}});
    let chat = with(
        sampling_properties(&gen_model, max_tokens),
        json!({
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}},
            "logprobs": {"type": "boolean"},
            "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        }),
    );
    let completion = with(
        sampling_properties(&gen_model, max_tokens),
        json!({
            "prompt": {"oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "array", "items": {"type": "integer", "minimum": 0}},
            ]},
            "logprobs": {"type": "integer", "minimum": 0, "maximum": 5},
            "echo": {"type": "boolean"},
        }),
    );
    let mut model_path = get("One served model");
    model_path["get"]["parameters"] =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut task_path = post(
        "What `tasklm predict` answers for a trained task model",
        "TaskRequest",
    );
    task_path["post"]["parameters"] =
        json!([{"name": "task", "in": "path", "required": true, "schema": names(tasks)}]);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "tasklm serve", "version": env!("CARGO_PKG_VERSION"),
                 "description": "OpenAI-compatible endpoints and tasklm's task endpoints."},
        "paths": {
            "/health": get("200 when the models are loaded, 503 while they load"),
            "/metrics": get("Prometheus text format"),
            "/v1/models": get("The served models"),
            "/v1/models/{id}": model_path,
            "/v1/chat/completions": post("Chat completion", "ChatRequest"),
            "/v1/completions": post("Text completion (legacy)", "CompletionRequest"),
            "/v1/embeddings": post("Sentence embeddings", "EmbeddingRequest"),
            "/v1/tasks/{task}": task_path,
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["message", "type"],
                "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                               "param": {"type": "string", "nullable": true},
                               "code": {"type": "string", "nullable": true}}}}},
            "Message": {"type": "object", "required": ["role", "content"], "properties": {
                "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
                "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {
                    "type": "object", "required": ["type", "text"],
                    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}}]},
                "name": {"type": "string"}}},
            "ChatRequest": {"type": "object", "required": ["messages"], "properties": chat},
            "CompletionRequest": {"type": "object", "required": ["prompt"], "properties": completion},
            "EmbeddingRequest": {"type": "object", "required": ["input"], "properties": {
                "model": emb_model,
                "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                "dimensions": {"type": "integer", "minimum": 1},
                "user": {"type": "string"}}},
            "TaskRequest": {"type": "object", "required": ["input"], "properties": {
                "model": {"type": "string"},
                "input": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}},
        }},
    })
}
