//! Turning a request's engine events into OpenAI's answer: one JSON body once every choice has
//! finished, or server-sent events as tokens come (`data: {chunk}` lines, a last chunk with the
//! finish reason, an optional usage chunk, then `data: [DONE]`). The shapes of chat and of
//! legacy completions differ only in their choice objects ([`Shape`]).

use crate::engine::Event;
use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tasklm_generate::{FinishReason, TokenLogprob};
use tokio::sync::mpsc::UnboundedReceiver;

/// What one endpoint's answers look like.
pub trait Shape: Send + Sync + 'static {
    /// `object` of a whole answer and of a stream chunk.
    const OBJECT: &'static str;
    const CHUNK_OBJECT: &'static str;
    const ID_PREFIX: &'static str;
    /// A choice of a whole answer.
    fn choice(&self, index: usize, c: &Choice) -> Value;
    /// The chunk a stream opens each choice with (chat: the assistant role), if any.
    fn opening_delta(&self, index: usize) -> Option<Value>;
    /// A stream chunk's choice: new text and its tokens' logprobs, or the finish reason.
    fn delta(
        &self,
        index: usize,
        text: &str,
        logprobs: Option<&[TokenLogprob]>,
        offset: usize,
        finish: Option<FinishReason>,
    ) -> Value;
}

/// One choice as it grows.
#[derive(Clone, Debug, Default)]
pub struct Choice {
    pub text: String,
    pub logprobs: Vec<TokenLogprob>,
    pub wants_logprobs: bool,
    pub finish: Option<FinishReason>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// The identity every chunk of one answer repeats.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub prompt_tokens: usize,
    pub started: Instant,
}

impl Meta {
    pub fn new<S: Shape>(model: &str, prompt_tokens: usize) -> Self {
        Self {
            id: format!("{}{:016x}", S::ID_PREFIX, super::fresh_u64()),
            created: super::unix_secs(),
            model: model.to_string(),
            prompt_tokens,
            started: Instant::now(),
        }
    }
}

pub fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion})
}

fn fingerprint() -> String {
    format!("tasklm-{}", env!("CARGO_PKG_VERSION"))
}

/// Waits until every choice has finished; a failed choice fails the request (500).
pub async fn collect(
    mut rx: UnboundedReceiver<(usize, Event)>,
    n: usize,
    wants_logprobs: bool,
) -> Result<Vec<Choice>, ApiError> {
    let mut choices = vec![
        Choice {
            wants_logprobs,
            ..Choice::default()
        };
        n
    ];
    let mut open = n;
    while open > 0 {
        let Some((i, event)) = rx.recv().await else {
            return Err(ApiError::internal(
                "the engine stopped before the answer was complete",
            ));
        };
        let c = &mut choices[i];
        match event {
            Event::Token(a) => {
                c.text.push_str(&a.text);
                c.logprobs.extend(a.logprob);
            }
            Event::Done(d) => {
                c.finish = Some(d.finish_reason);
                c.prompt_tokens = d.prompt_tokens;
                c.completion_tokens = d.completion_tokens;
                open -= 1;
            }
            Event::Failed(m) => return Err(ApiError::internal(m)),
        }
    }
    Ok(choices)
}

/// The whole answer.
pub fn body<S: Shape>(shape: &S, meta: &Meta, choices: &[Choice]) -> Value {
    let completion: usize = choices.iter().map(|c| c.completion_tokens).sum();
    json!({
        "id": meta.id,
        "object": S::OBJECT,
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": fingerprint(),
        "choices": choices.iter().enumerate().map(|(i, c)| shape.choice(i, c)).collect::<Vec<_>>(),
        "usage": usage(meta.prompt_tokens, completion),
    })
}

struct StreamState<S: Shape> {
    shape: S,
    rx: UnboundedReceiver<(usize, Event)>,
    meta: Meta,
    include_usage: bool,
    open: usize,
    completion_tokens: usize,
    /// Logprobs of tokens whose text is still held back, per choice.
    held: Vec<Vec<TokenLogprob>>,
    /// Text already sent, per choice (legacy logprobs' `text_offset`).
    sent: Vec<usize>,
    out: VecDeque<SseEvent>,
    finished: bool,
    metrics: Arc<Metrics>,
}

impl<S: Shape> StreamState<S> {
    /// A chunk with these choices; with `include_usage`, its `usage` (null but in the last).
    fn chunk_with(&self, choices: Vec<Value>, usage: Value) -> SseEvent {
        let mut v = json!({
            "id": self.meta.id,
            "object": S::CHUNK_OBJECT,
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": fingerprint(),
            "choices": choices,
        });
        if self.include_usage {
            v["usage"] = usage;
        }
        SseEvent::default().data(v.to_string())
    }

    fn chunk(&self, choices: Vec<Value>) -> SseEvent {
        self.chunk_with(choices, Value::Null)
    }

    fn on_event(&mut self, i: usize, event: Event) {
        match event {
            Event::Token(a) => {
                self.held[i].extend(a.logprob);
                if !a.text.is_empty() {
                    let lp = std::mem::take(&mut self.held[i]);
                    let delta = self.shape.delta(i, &a.text, Some(&lp), self.sent[i], None);
                    self.sent[i] += a.text.len();
                    let c = self.chunk(vec![delta]);
                    self.out.push_back(c);
                }
            }
            Event::Done(d) => {
                let lp = std::mem::take(&mut self.held[i]);
                if !lp.is_empty() {
                    let delta = self.shape.delta(i, "", Some(&lp), self.sent[i], None);
                    let c = self.chunk(vec![delta]);
                    self.out.push_back(c);
                }
                let last = self
                    .shape
                    .delta(i, "", None, self.sent[i], Some(d.finish_reason));
                let c = self.chunk(vec![last]);
                self.out.push_back(c);
                self.completion_tokens += d.completion_tokens;
                self.open -= 1;
            }
            Event::Failed(m) => {
                let e = ApiError::internal(m);
                self.out
                    .push_back(SseEvent::default().data(e.body().to_string()));
                self.open = 0;
            }
        }
        if self.open == 0 && !self.finished {
            self.finished = true;
            if self.include_usage {
                let u = usage(self.meta.prompt_tokens, self.completion_tokens);
                let c = self.chunk_with(Vec::new(), u);
                self.out.push_back(c);
            }
            self.out.push_back(SseEvent::default().data("[DONE]"));
            self.metrics
                .request_duration
                .observe(self.meta.started.elapsed());
        }
    }
}

/// The answer as server-sent events. Dropping the stream (the client went away) drops the
/// receiver, and the engine drops the request's rows at its next step.
pub fn stream<S: Shape>(
    shape: S,
    rx: UnboundedReceiver<(usize, Event)>,
    n: usize,
    meta: Meta,
    include_usage: bool,
    metrics: Arc<Metrics>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut st = StreamState {
        shape,
        rx,
        meta,
        include_usage,
        open: n,
        completion_tokens: 0,
        held: vec![Vec::new(); n],
        sent: vec![0; n],
        out: VecDeque::new(),
        finished: false,
        metrics,
    };
    for i in 0..n {
        if let Some(d) = st.shape.opening_delta(i) {
            let c = st.chunk(vec![d]);
            st.out.push_back(c);
        }
    }
    let events = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.out.pop_front() {
                return Some((Ok(e), st));
            }
            if st.finished {
                return None;
            }
            match st.rx.recv().await {
                Some((i, event)) => st.on_event(i, event),
                None => {
                    st.on_event(0, Event::Failed("the engine stopped".into()));
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
