//! tasklm-serve: `tasklm serve`, an OpenAI-compatible HTTP server (chat and text completions,
//! embeddings, models) with task endpoints for every model `tasklm predict` answers.
//!
//! Generation runs through continuous batching over the step contract ([`engine`]); HTTP runs
//! on its own tokio threads, tensor math on the compute pool, so the server answers health
//! checks, 401s and 429s while the cores decode.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub use tasklm_hub::embed;
pub mod engine;
mod error;
pub mod load_test;
pub mod metrics;
pub mod openai;
mod openapi;
pub mod served;
pub mod tasks;

pub use app::{router, AppState, Limits};
pub use engine::{Engine, EngineOptions};
pub use error::{ApiError, Result, ServeError};
pub use served::{LoadSettings, ModelSpec, ServedModel};

use rayon::ThreadPool;
use std::sync::Arc;

/// Everything `tasklm serve` is started with.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub models: Vec<ModelSpec>,
    pub api_keys: Vec<String>,
    pub limits: Limits,
    /// How models load, their engines' limits included.
    pub load: LoadSettings,
}

/// Loads every model (the server answers 503 meanwhile).
fn load_models(
    options: &ServeOptions,
    metrics: &Arc<metrics::Metrics>,
    pool: Option<&Arc<ThreadPool>>,
) -> Result<Vec<ServedModel>> {
    let settings = &options.load;
    // Adapters over one base share its weights in memory.
    let _shared = tasklm_hub::share_bases();
    let mut out: Vec<ServedModel> = Vec::new();
    for m in &options.models {
        if out.iter().any(|o| o.name == m.name) {
            return Err(ServeError::Invalid(format!(
                "two models are named `{}`: name them with --model NAME=DIR",
                m.name
            )));
        }
        eprintln!("tasklm serve: loading `{}` from {}", m.name, m.spec);
        let loaded = served::load(m, settings, metrics, pool)?;
        eprintln!(
            "tasklm serve: `{}` serves {}",
            loaded.name,
            loaded.capabilities().join(", ")
        );
        out.push(loaded);
    }
    Ok(out)
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the server until SIGTERM or Ctrl-C: then it stops accepting connections, finishes
/// the requests in flight and returns. Tensor math runs on `pool` when given.
pub fn run(options: ServeOptions, pool: Option<Arc<ThreadPool>>) -> Result<()> {
    if options.models.is_empty() {
        return Err(ServeError::Invalid("give at least one --model".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tasklm-http")
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io {
            what: "starting the HTTP runtime".into(),
            source: e,
        })?;
    runtime.block_on(async move {
        let addr = format!("{}:{}", options.host, options.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| ServeError::Io {
                what: format!("listening on {addr}"),
                source: e,
            })?;
        let local = listener.local_addr().map_err(|e| ServeError::Io {
            what: "reading the bound address".into(),
            source: e,
        })?;
        eprintln!("tasklm serve: listening on http://{local} (GET /health says when the models are loaded)");
        let metrics = Arc::new(metrics::Metrics::default());
        let state = Arc::new(AppState::new(
            options.limits,
            &options.api_keys,
            metrics.clone(),
            pool.clone(),
        ));
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<ServeError>();
        let loader_state = state.clone();
        tokio::task::spawn_blocking(move || {
            match load_models(&options, &metrics, pool.as_ref()) {
                Ok(models) => {
                    loader_state.set_models(models);
                    eprintln!("tasklm serve: ready");
                }
                Err(e) => {
                    let _ = failed_tx.send(e);
                }
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Option<ServeError>>();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop_signal() => { let _ = stop_tx.send(None); }
                Ok(e) = failed_rx => { let _ = stop_tx.send(Some(e)); }
            }
        });
        let (error_tx, error_rx) = tokio::sync::oneshot::channel::<ServeError>();
        let shutdown = async move {
            if let Ok(Some(e)) = stop_rx.await {
                let _ = error_tx.send(e);
            } else {
                eprintln!("tasklm serve: stopping: no new connections; finishing requests in flight");
            }
        };
        axum::serve(listener, router(state.clone()))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ServeError::Io {
                what: "serving HTTP".into(),
                source: e,
            })?;
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || s.shutdown_engines()).await;
        match error_rx.await {
            Ok(e) => Err(e),
            Err(_) => {
                eprintln!("tasklm serve: stopped");
                Ok(())
            }
        }
    })
}
