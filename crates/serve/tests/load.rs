//! The load generator of `tasklm bench serve` against the server on a real loopback socket.

mod common;

use common::*;
use tasklm_serve::load_test::{self, LoadSpec};
use tasklm_serve::{EngineOptions, Limits};

async fn listen(s: std::sync::Arc<tasklm_serve::AppState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(listener, tasklm_serve::router(s))
            .await
            .unwrap();
    });
    addr
}

fn spec(addr: &str, concurrency: usize, requests: usize) -> LoadSpec {
    LoadSpec {
        addr: addr.to_string(),
        model: "tiny".into(),
        api_key: None,
        concurrency,
        requests,
        max_tokens: 8,
        prompts: vec!["hello".into(), "a longer prompt with more words".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_counted_and_timed() {
    let addr = listen(state()).await;
    let r = load_test::run(spec(&addr, 4, 12)).await;
    assert_eq!(r.ok, 12, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(r.output_tokens >= 12 && r.output_tokens <= 12 * 8, "{r:?}");
    assert!(
        r.ttft_p50_ms > 0.0 && r.ttft_p99_ms >= r.ttft_p50_ms,
        "{r:?}"
    );
    assert!(r.requests_per_s > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_status() {
    // A wrong model name: every request is a 404, none is lost.
    let addr = listen(state_with(
        Limits::default(),
        &[],
        EngineOptions {
            max_batch: 2,
            max_queue: 2,
        },
    ))
    .await;
    let mut s = spec(&addr, 3, 6);
    s.model = "nope".into();
    let r = load_test::run(s).await;
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors.get(&404), Some(&6), "{r:?}");
    assert!(r.refused_max_ms > 0.0 && r.refused_max_ms < 1000.0, "{r:?}");
}
