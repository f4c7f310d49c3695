//! Continuous batching: one engine thread per generative model drives a running batch over the
//! step contract ([`StepModel`]). Requests wait in a bounded queue; between two steps the engine
//! prefills every waiting request that fits (`--max-batch`) into the running batch, so a new
//! request costs the others one prefill at most, and rows leave the batch (`select`) as soon as
//! they finish or their client goes away. Each row samples with its own settings
//! ([`RowSampler`]), and sends every token to its request as an [`Event`].
//!
//! The engine runs its tensor math on the compute pool (rayon), never on the HTTP runtime's
//! threads, so health checks, 401s and 429s are answered while both cores decode.

use crate::error::ApiError;
use crate::metrics::Metrics;
use rayon::ThreadPool;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tasklm_generate::{
    Accepted, DecoderSteps, FinishReason, RowInput, RowSampler, SamplingParams, StepModel,
};
use tasklm_hub::LoadedDecoder;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// What a request receives for each of its choices, in order: tokens, then `Done` (or
/// `Failed`), each tagged with the choice's index.
#[derive(Debug)]
pub enum Event {
    Token(Accepted),
    Done(Finished),
    Failed(String),
}

/// How a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// One sequence to generate: one choice of a request.
pub struct Job {
    /// The choice's index in its request.
    pub index: usize,
    pub prompt: Vec<u32>,
    /// Its own settings (seed included); `max_new_tokens` is already within the context left.
    pub params: SamplingParams,
    pub events: UnboundedSender<(usize, Event)>,
    pub arrived: Instant,
}

impl Job {
    /// The `n` choices of one request (choice `i` seeded with `params.seed + i`) and the
    /// receiver of all their events.
    pub fn choices(
        prompt: &[u32],
        params: &SamplingParams,
        n: usize,
    ) -> (Vec<Self>, UnboundedReceiver<(usize, Event)>) {
        Self::batch(&[prompt.to_vec()], params, n)
    }

    /// `n` choices for each prompt: choice `p * n + j` continues prompt `p`, seeded with
    /// `params.seed + p * n + j`; one receiver for all.
    pub fn batch(
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        n: usize,
    ) -> (Vec<Self>, UnboundedReceiver<(usize, Event)>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let arrived = Instant::now();
        let mut jobs = Vec::with_capacity(prompts.len() * n);
        for (p, prompt) in prompts.iter().enumerate() {
            for j in 0..n {
                let index = p * n + j;
                jobs.push(Self {
                    index,
                    prompt: prompt.clone(),
                    params: SamplingParams {
                        seed: params.seed.wrapping_add(index as u64),
                        ..params.clone()
                    },
                    events: tx.clone(),
                    arrived,
                });
            }
        }
        (jobs, rx)
    }
}

/// Limits of one engine.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// Rows decoding at once.
    pub max_batch: usize,
    /// Requests waiting for a row; past it, submissions get 429 at once.
    pub max_queue: usize,
}

impl Default for EngineOptions {
    /// `tasklm serve`'s defaults.
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_queue: 256,
        }
    }
}

struct Queue {
    pending: VecDeque<Job>,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    options: EngineOptions,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The jobs that join the batch now (up to its free rows). Waits while nothing runs and
    /// nothing waits; None once shut down with nothing left to do.
    fn admit(&self, running: usize) -> Option<Vec<Job>> {
        let mut q = self.lock();
        while running == 0 && q.pending.is_empty() {
            if q.shutdown {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        let free = self.options.max_batch.saturating_sub(running);
        let n = free.min(q.pending.len());
        let jobs: Vec<Job> = q.pending.drain(..n).collect();
        self.metrics
            .queued
            .store(q.pending.len() as u64, Ordering::Relaxed);
        Some(jobs)
    }
}

/// A generative model's engine: a queue and the thread that decodes.
pub struct Engine {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the engine thread for `model`; tensor math runs on `pool` when given.
    pub fn start(
        model: Arc<LoadedDecoder>,
        options: EngineOptions,
        metrics: Arc<Metrics>,
        pool: Option<Arc<ThreadPool>>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            options,
            metrics,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tasklm-engine".into())
            .stack_size(16 << 20)
            .spawn(move || run(&s, &model, pool.as_deref()))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues the jobs (a request's choices) together, or refuses them all at once: 429 when
    /// the queue cannot take them, 503 once shutting down.
    pub fn submit(&self, jobs: Vec<Job>) -> Result<(), ApiError> {
        let mut q = self.shared.lock();
        if q.shutdown {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        if q.pending.len() + jobs.len() > self.shared.options.max_queue {
            return Err(ApiError::queue_full(self.shared.options.max_queue));
        }
        q.pending.extend(jobs);
        self.shared
            .metrics
            .queued
            .store(q.pending.len() as u64, Ordering::Relaxed);
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Refuses new jobs, finishes the queued and running ones, then joins the thread.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A row of the running batch.
struct Row {
    index: usize,
    sampler: RowSampler,
    events: UnboundedSender<(usize, Event)>,
    arrived: Instant,
    last_token: Option<Instant>,
    last_id: u32,
    failed: bool,
}

impl Row {
    fn new(job: Job, limit: usize) -> Self {
        Self {
            index: job.index,
            sampler: RowSampler::new(job.params, &job.prompt, limit),
            events: job.events,
            arrived: job.arrived,
            last_token: None,
            last_id: 0,
            failed: false,
        }
    }

    /// Samples this row's next token, sends it, and sends `Done` when the row ends.
    fn accept(&mut self, raw: &[f32], model: &LoadedDecoder, metrics: &Metrics) {
        match self.sampler.accept(raw, &model.tokenizer) {
            Ok(a) => {
                let now = Instant::now();
                match self.last_token {
                    None => metrics.time_to_first_token.observe(now - self.arrived),
                    Some(t) => metrics.inter_token_latency.observe(now - t),
                }
                self.last_token = Some(now);
                metrics.completion_tokens.fetch_add(1, Ordering::Relaxed);
                self.last_id = a.id;
                let _ = self.events.send((self.index, Event::Token(a)));
                if let Some(reason) = self.sampler.finish_reason() {
                    let done = Finished {
                        finish_reason: reason,
                        prompt_tokens: self.sampler.prompt_tokens(),
                        completion_tokens: self.sampler.generated().len(),
                    };
                    let _ = self.events.send((self.index, Event::Done(done)));
                }
            }
            Err(e) => self.fail(&e.to_string()),
        }
    }

    fn fail(&mut self, message: &str) {
        let _ = self
            .events
            .send((self.index, Event::Failed(message.to_string())));
        self.failed = true;
    }

    /// Still generating for a client that is still there.
    fn alive(&self) -> bool {
        !self.failed && !self.sampler.is_finished() && !self.events.is_closed()
    }
}

/// Fails every row with `e`: after an error the batch may be inconsistent, so the caller starts
/// a new one.
fn fail_all(rows: &mut Vec<Row>, e: &dyn std::fmt::Display) {
    let message = format!("generation failed: {e}");
    rows.iter_mut().for_each(|r| r.fail(&message));
    rows.clear();
}

fn on_pool<T: Send>(pool: Option<&ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// The engine loop: admit, prefill, drop finished rows, step; until shut down and drained.
fn run(shared: &Shared, model: &LoadedDecoder, pool: Option<&ThreadPool>) {
    let steps = DecoderSteps::new(model.model.as_ref(), model.tokenizer.pad_id());
    let metrics = &shared.metrics;
    let mut batch = steps.new_batch();
    let mut rows: Vec<Row> = Vec::new();
    while let Some(jobs) = shared.admit(rows.len()) {
        if !jobs.is_empty() {
            let inputs: Vec<RowInput> = jobs
                .iter()
                .map(|j| RowInput::from_ids(j.prompt.clone()))
                .collect();
            let mut joining: Vec<Row> = jobs
                .into_iter()
                .map(|j| {
                    let limit = steps.max_new_tokens(j.prompt.len());
                    Row::new(j, limit)
                })
                .collect();
            let logits = on_pool(pool, || {
                steps
                    .prefill(&mut batch, &inputs)
                    .and_then(|l| Ok(l.to_vec2::<f32>()?))
            });
            match logits {
                Ok(logits) => {
                    for (row, raw) in joining.iter_mut().zip(logits) {
                        row.accept(&raw, model, metrics);
                    }
                    rows.append(&mut joining);
                }
                Err(e) => {
                    rows.append(&mut joining);
                    fail_all(&mut rows, &e);
                    batch = steps.new_batch();
                    metrics.running.store(0, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let keep: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].alive()).collect();
        if keep.len() < rows.len() {
            if keep.is_empty() {
                batch = steps.new_batch();
                rows.clear();
            } else {
                let kept = on_pool(pool, || {
                    steps.select(&mut batch, &keep)?;
                    steps.compact(&mut batch)
                });
                let mut old: Vec<Option<Row>> = rows.drain(..).map(Some).collect();
                rows = keep.iter().filter_map(|&i| old[i].take()).collect();
                if let Err(e) = kept {
                    fail_all(&mut rows, &e);
                    batch = steps.new_batch();
                }
            }
        }
        metrics.running.store(rows.len() as u64, Ordering::Relaxed);
        if rows.is_empty() {
            continue;
        }
        let next: Vec<u32> = rows.iter().map(|r| r.last_id).collect();
        let logits = on_pool(pool, || {
            steps
                .step(&mut batch, &next)
                .and_then(|l| Ok(l.to_vec2::<f32>()?))
        });
        match logits {
            Ok(logits) => {
                for (row, raw) in rows.iter_mut().zip(logits) {
                    row.accept(&raw, model, metrics);
                }
            }
            Err(e) => {
                fail_all(&mut rows, &e);
                batch = steps.new_batch();
            }
        }
    }
    metrics.running.store(0, Ordering::Relaxed);
}
