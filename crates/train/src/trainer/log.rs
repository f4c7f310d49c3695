//! The training log: a progress bar on the terminal and `OUT/metrics.jsonl`, one JSON object
//! per logged update or evaluation.

use crate::{Result, TrainError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const METRICS: &str = "metrics.jsonl";

pub struct TrainLog {
    path: PathBuf,
    bar: ProgressBar,
}

impl TrainLog {
    /// Opens the log of `out`; when resuming at `step`, records after it (from the interrupted
    /// run) are removed so the log reads as one run.
    pub fn open(out: &Path, total: u64, step: u64, progress: bool) -> Result<Self> {
        let path = out.join(METRICS);
        let io = |e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", path.display()));
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(Value::as_u64))
                        .is_some_and(|s| s <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&path, kept).map_err(io)?;
        }
        let bar = if progress {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:28}] {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix("train");
        bar.set_position(step);
        bar.reset_eta();
        Ok(Self { path, bar })
    }

    fn append(&self, v: &Value) -> Result<()> {
        let io =
            |e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", self.path.display()));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(f, "{v}").map_err(io)
    }

    /// One update: the bar moves and a record is appended.
    pub fn step(&self, rec: &StepRecord) -> Result<()> {
        self.bar.set_position(rec.step);
        self.bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s",
            rec.loss, rec.lr, rec.tokens_per_s
        ));
        self.append(&json!({
            "step": rec.step,
            "epoch": rec.epoch,
            "loss": rec.loss,
            "lr": rec.lr,
            "grad_norm": rec.grad_norm,
            "tokens_per_s": rec.tokens_per_s,
            "tokens": rec.tokens,
            "elapsed_s": rec.elapsed_s,
            "refused": rec.refused,
        }))
    }

    /// An evaluation at `step`: printed above the bar and logged with `eval_` keys.
    pub fn eval(&self, step: u64, metrics: &[(String, f64)]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), json!(step));
        let mut line = format!("eval @ step {step}:");
        for (k, v) in metrics {
            obj.insert(format!("eval_{k}"), json!(v));
            line.push_str(&format!(" {k} {v:.4}"));
        }
        self.bar.println(line);
        self.append(&Value::Object(obj))
    }

    /// A line above the bar (warnings, checkpoints).
    pub fn note(&self, msg: &str) {
        if self.bar.is_hidden() {
            eprintln!("{msg}");
        } else {
            self.bar.println(msg);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What one update reports.
#[derive(Clone, Debug)]
pub struct StepRecord {
    pub step: u64,
    /// Fractional epochs done.
    pub epoch: f64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    pub tokens: usize,
    pub elapsed_s: f64,
    /// True when the update was refused for a NaN/Inf loss or gradient.
    pub refused: bool,
}
