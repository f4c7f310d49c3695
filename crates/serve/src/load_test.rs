//! `tasklm bench serve`: a bounded load generator for a running server on loopback. `concurrency`
//! clients send streaming chat requests with fixed prompts until `requests` have been sent in
//! all, and the report gives requests/s, output tokens/s, time to first token and inter-token
//! latency (p50, p99), and errors by status.

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One load run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// `host:port` of the server.
    pub addr: String,
    pub model: String,
    pub api_key: Option<String>,
    pub concurrency: usize,
    pub requests: usize,
    pub max_tokens: usize,
    pub prompts: Vec<String>,
}

/// What a load run measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadReport {
    pub concurrency: usize,
    pub requests: usize,
    pub ok: usize,
    /// Failed requests by HTTP status (0: the connection failed).
    pub errors: BTreeMap<u16, usize>,
    pub wall_s: f64,
    pub requests_per_s: f64,
    pub output_tokens: usize,
    pub output_tokens_per_s: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p99_ms: f64,
    pub itl_p50_ms: f64,
    pub itl_p99_ms: f64,
    /// The slowest refused request (any status but 200), in ms: how fast a 429 comes.
    pub refused_max_ms: f64,
    /// `GET /health` answered during the load (one probe every 100 ms): slowest, in ms.
    pub health_max_ms: f64,
    pub health_probes: usize,
}

#[derive(Default)]
struct Samples {
    ttft: Vec<Duration>,
    itl: Vec<Duration>,
    tokens: usize,
    ok: usize,
    errors: BTreeMap<u16, usize>,
    refused: Vec<Duration>,
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

/// A fresh HTTP/1.1 connection to `addr`, its driver spawned.
async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One streaming request: (status, time to first token, gaps between content chunks, output
/// tokens from the usage chunk).
async fn one_request(
    spec: &LoadSpec,
    prompt: &str,
) -> Result<(u16, Option<Duration>, Vec<Duration>, usize), String> {
    let started = Instant::now();
    let mut sender = connect(&spec.addr).await?;
    let body = json!({
        "model": spec.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": spec.max_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut req = Request::post("/v1/chat/completions")
        .header("host", &spec.addr)
        .header("content-type", "application/json");
    if let Some(k) = &spec.api_key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let (mut first, mut last) = (None, None::<Instant>);
    let mut gaps = Vec::new();
    let (mut tokens, mut chunks) = (None, 0);
    let mut pending = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(data));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(payload) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if payload == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = Some(n as usize);
            }
            let content = v["choices"][0]["delta"]["content"].as_str().unwrap_or("");
            if !content.is_empty() {
                chunks += 1;
                let now = Instant::now();
                match last {
                    None => first = Some(now - started),
                    Some(t) => gaps.push(now - t),
                }
                last = Some(now);
            }
        }
    }
    // Servers that send no usage chunk stream one token per chunk.
    Ok((status, first, gaps, tokens.unwrap_or(chunks)))
}

/// The time `GET /health` takes on a fresh connection.
async fn probe_health(addr: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut sender = connect(addr).await.ok()?;
    let req = Request::get("/health")
        .header("host", addr)
        .body(Full::new(Bytes::new()))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let _ = resp.into_body().collect().await.ok()?;
    Some(started.elapsed())
}

/// Runs one load and measures it.
pub async fn run(spec: LoadSpec) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let spec = Arc::new(spec);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..spec.concurrency.max(1) {
        let (next, samples, spec) = (next.clone(), samples.clone(), spec.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= spec.requests {
                    break;
                }
                let prompt = &spec.prompts[i % spec.prompts.len().max(1)];
                let sent = Instant::now();
                let r = one_request(&spec, prompt).await;
                let took = sent.elapsed();
                let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok((200, first, gaps, tokens)) => {
                        s.ok += 1;
                        s.tokens += tokens;
                        s.ttft.extend(first);
                        s.itl.extend(gaps);
                    }
                    Ok((status, ..)) => {
                        *s.errors.entry(status).or_insert(0) += 1;
                        s.refused.push(took);
                    }
                    Err(_) => *s.errors.entry(0).or_insert(0) += 1,
                }
            }
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (done, addr) = (done.clone(), spec.addr.clone());
        tokio::spawn(async move {
            let mut times = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Some(t) = probe_health(&addr).await {
                    times.push(t);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            times
        })
    };
    for w in workers {
        let _ = w.await;
    }
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let health = prober.await.unwrap_or_default();
    let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
    let s = &mut *s;
    LoadReport {
        concurrency: spec.concurrency,
        requests: spec.requests,
        ok: s.ok,
        errors: s.errors.clone(),
        wall_s: wall,
        requests_per_s: s.ok as f64 / wall,
        output_tokens: s.tokens,
        output_tokens_per_s: s.tokens as f64 / wall,
        ttft_p50_ms: percentile(&mut s.ttft, 0.5),
        ttft_p99_ms: percentile(&mut s.ttft, 0.99),
        itl_p50_ms: percentile(&mut s.itl, 0.5),
        itl_p99_ms: percentile(&mut s.itl, 0.99),
        refused_max_ms: s
            .refused
            .iter()
            .max()
            .map_or(0.0, |d| d.as_secs_f64() * 1e3),
        health_max_ms: health.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        health_probes: health.len(),
    }
}
