//! Continuous batching on the tiny decoder: a request's greedy output is the same alone and in a
//! batch it joins mid-decode, a full queue is a 429 at once, and a client that goes away frees
//! its row at the next step.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasklm_generate::SamplingParams;
use tasklm_serve::engine::{Event, Job};
use tasklm_serve::{Engine, EngineOptions, Limits};
use tokio::sync::mpsc::UnboundedReceiver;

fn greedy(n: usize) -> SamplingParams {
    SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(n)
    }
}

/// Every choice's token ids, once all are done.
fn ids_of(mut rx: UnboundedReceiver<(usize, Event)>, n: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n];
    let mut open = n;
    while open > 0 {
        match rx.blocking_recv().expect("engine stopped") {
            (i, Event::Token(a)) => out[i].push(a.id),
            (_, Event::Done(_)) => open -= 1,
            (_, Event::Failed(m)) => panic!("{m}"),
        }
    }
    out
}

fn engine_for(
    decoder: tasklm_hub::LoadedDecoder,
    max_batch: usize,
    max_queue: usize,
) -> (Engine, Arc<tasklm_serve::metrics::Metrics>) {
    let metrics = Arc::new(tasklm_serve::metrics::Metrics::default());
    let e = Engine::start(
        Arc::new(decoder),
        EngineOptions {
            max_batch,
            max_queue,
        },
        metrics.clone(),
        None,
    )
    .unwrap();
    (e, metrics)
}

fn engine(max_batch: usize, max_queue: usize) -> (Engine, Arc<tasklm_serve::metrics::Metrics>) {
    let decoder = tasklm_hub::load_decoder(&fixture("tiny_decoder"), false).unwrap();
    engine_for(decoder, max_batch, max_queue)
}

/// Each prompt decoded alone, then the first two started together and the others joining them
/// mid-decode: the same greedy ids.
fn alone_equals_joined(e: &Engine, prompts: &[Vec<u32>], tokens: usize) {
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let (jobs, rx) = Job::choices(p, &greedy(tokens), 1);
            e.submit(jobs).unwrap();
            ids_of(rx, 1).remove(0)
        })
        .collect();
    let (first, mut rx_a) = Job::batch(&prompts[..2], &greedy(tokens), 1);
    e.submit(first).unwrap();
    let mut early = vec![Vec::new(); 2];
    let mut seen = 0;
    while seen < 4 {
        if let (i, Event::Token(a)) = rx_a.blocking_recv().unwrap() {
            early[i].push(a.id);
            seen += 1;
        }
    }
    let (second, rx_b) = Job::batch(&prompts[2..], &greedy(tokens), 1);
    e.submit(second).unwrap();
    let rest_a = ids_of(rx_a, 2);
    let joined = ids_of(rx_b, prompts.len() - 2);
    for i in 0..2 {
        let mut all = early[i].clone();
        all.extend(&rest_a[i]);
        assert_eq!(all, alone[i], "row {i} started in the batch");
    }
    for (i, j) in joined.iter().enumerate() {
        assert_eq!(j, &alone[i + 2], "row {} joined mid-decode", i + 2);
    }
}

#[test]
fn greedy_output_is_the_same_alone_and_joining_a_running_batch() {
    let (e, _) = engine(8, 16);
    let prompts: Vec<Vec<u32>> = vec![
        vec![5, 6, 7],
        vec![9, 10, 11, 12, 13, 14, 15],
        vec![20],
        vec![30, 31, 32, 33],
    ];
    alone_equals_joined(&e, &prompts, 24);
}

#[test]
fn smollm2_greedy_output_is_the_same_alone_and_in_a_batch() {
    let Some(path) = tasklm_hub::testing::catalog_model("smollm2-135m-instruct").unwrap() else {
        return;
    };
    let decoder = tasklm_hub::load_decoder(path.to_str().unwrap(), false).unwrap();
    let texts = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, in a small village by the sea, there lived",
        "1, 2, 3, 4,",
    ];
    let prompts: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| decoder.tokenizer.encode(t, false).unwrap())
        .collect();
    let (e, _) = engine_for(decoder, 8, 16);
    alone_equals_joined(&e, &prompts, 12);
}

#[test]
fn a_client_that_goes_away_frees_its_row() {
    let (e, metrics) = engine(1, 4);
    let (jobs, mut rx) = Job::choices(&[5, 6, 7], &greedy(500), 1);
    e.submit(jobs).unwrap();
    assert!(matches!(rx.blocking_recv(), Some((0, Event::Token(_)))));
    drop(rx);
    // With one row per batch, this one runs only once the first row is gone.
    let (jobs, rx) = Job::choices(&[8, 9], &greedy(10), 1);
    e.submit(jobs).unwrap();
    assert_eq!(ids_of(rx, 1)[0].len(), 10);
    let generated = metrics.completion_tokens.load(Ordering::Relaxed);
    assert!(
        generated < 300,
        "the abandoned row went on: {generated} tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_429_at_once() {
    // The engine's compute pool has one thread, held busy by the test: the first request is
    // admitted and waits there, so the queue behind it stays put.
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    );
    let (release, hold) = std::sync::mpsc::channel::<()>();
    pool.spawn(move || {
        let _ = hold.recv();
    });
    let s = state_on(
        Limits::default(),
        &[],
        EngineOptions {
            max_batch: 1,
            max_queue: 1,
        },
        Some(pool),
    );
    let model = s.model("tiny").unwrap();
    let engine = &model.generator.as_ref().unwrap().engine;
    let (running, rx_running) = Job::choices(&[5, 6, 7], &greedy(8), 1);
    engine.submit(running).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metrics.queued.load(Ordering::Relaxed) != 0
        || s.metrics.running.load(Ordering::Relaxed) != 0
    {
        assert!(
            Instant::now() < deadline,
            "the first job was never admitted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (waiting, rx_waiting) = Job::choices(&[8], &greedy(8), 1);
    engine.submit(waiting).unwrap();
    let started = Instant::now();
    let body =
        json!({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4});
    let a = send(&s, post("/v1/chat/completions", &body)).await;
    let took = started.elapsed();
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(error_of(&a)["type"], "rate_limit_error");
    assert!(took < Duration::from_millis(50), "429 took {took:?}");
    // Released, both queued jobs finish.
    release.send(()).unwrap();
    let (a, b) =
        tokio::task::spawn_blocking(move || (ids_of(rx_running, 1), ids_of(rx_waiting, 1)))
            .await
            .unwrap();
    assert_eq!((a[0].len(), b[0].len()), (8, 8));
}

#[test]
fn a_row_may_join_a_batch_whose_cache_outgrows_the_context() {
    // The tiny decoder's context is 512: a long-running row's cache plus a long new prompt pass
    // it, while each row's own positions stay inside.
    let (e, _) = engine(4, 4);
    let long_prompt: Vec<u32> = (0..300).map(|i| 3 + (i * 7) % 90).collect();
    let (jobs, rx) = Job::choices(&long_prompt, &greedy(100), 1);
    e.submit(jobs).unwrap();
    let alone = ids_of(rx, 1).remove(0);
    let (jobs, mut rx_a) = Job::choices(&[5, 6, 7], &greedy(480), 1);
    e.submit(jobs).unwrap();
    let mut seen = 0;
    while seen < 300 {
        if let (_, Event::Token(_)) = rx_a.blocking_recv().unwrap() {
            seen += 1;
        }
    }
    let (jobs, rx_b) = Job::choices(&long_prompt, &greedy(100), 1);
    e.submit(jobs).unwrap();
    assert_eq!(ids_of(rx_b, 1).remove(0), alone);
    assert_eq!(ids_of(rx_a, 1)[0].len(), 480 - 300);
}
