//! One result shape for every task's train and eval: the metrics under their reference names,
//! counts, timings and the notices printed on the way. It prints as a two-column table and as
//! one flat JSON object whose keys are the metric and count names (`accuracy`, `macro_f1`,
//! `f1`, `exact_match`, `bleu`, `rougeL`, `pass@1`, `loss`, `n`, ...).

use crate::TaskKind;
use serde_json::{Map, Value};

/// What a train or eval run produced.
#[derive(Clone, Debug)]
pub struct Report {
    pub task: TaskKind,
    /// The task's metrics by their reference names, in display order.
    pub metrics: Vec<(String, Value)>,
    /// Counts: `n` (records scored), `tokens`, `steps`, ...
    pub counts: Vec<(String, u64)>,
    /// Wall times in seconds.
    pub timings: Vec<(String, f64)>,
    /// The notices printed during the run (truncated records, fresh heads, ...).
    pub notices: Vec<String>,
    /// Training: the loss of each update this run took, in order (empty for eval).
    pub losses: Vec<f64>,
}

impl Report {
    pub fn new(task: TaskKind) -> Self {
        Self {
            task,
            metrics: Vec::new(),
            counts: Vec::new(),
            timings: Vec::new(),
            notices: Vec::new(),
            losses: Vec::new(),
        }
    }

    /// Adds a metric.
    pub fn metric(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metrics.push((name.into(), value.into()));
        self
    }

    /// Adds a count.
    pub fn count(mut self, name: impl Into<String>, value: u64) -> Self {
        self.counts.push((name.into(), value));
        self
    }

    /// Adds a wall time in seconds.
    pub fn timing(mut self, name: impl Into<String>, seconds: f64) -> Self {
        self.timings.push((name.into(), seconds));
        self
    }

    /// A metric's value as a number.
    pub fn metric_f64(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.0 == name)
            .and_then(|m| m.1.as_f64())
    }

    /// A count, 0 when absent.
    pub fn count_of(&self, name: &str) -> u64 {
        self.counts.iter().find(|c| c.0 == name).map_or(0, |c| c.1)
    }

    /// A timing in seconds, 0 when absent.
    pub fn timing_of(&self, name: &str) -> f64 {
        self.timings
            .iter()
            .find(|t| t.0 == name)
            .map_or(0.0, |t| t.1)
    }

    /// The metrics then the counts, as (name, value) rows.
    pub fn rows(&self) -> Vec<(String, Value)> {
        self.metrics
            .iter()
            .cloned()
            .chain(
                self.counts
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(*v))),
            )
            .collect()
    }

    /// One flat JSON object: every metric and count under its own name.
    pub fn to_json(&self) -> Value {
        let obj: Map<String, Value> = self.rows().into_iter().collect();
        Value::Object(obj)
    }

    /// A two-column table (`metric  value`) of the metrics and counts; numbers to 4 places.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(6).max(6);
        let mut out = format!(
            "{:<w$}  value\n{}  {}\n",
            "metric",
            "-".repeat(w),
            "-".repeat(12)
        );
        for (k, v) in &rows {
            let shown = match v.as_f64() {
                Some(x) if v.is_f64() => format!("{x:.4}"),
                _ => v.to_string(),
            };
            out.push_str(&format!("{k:<w$}  {shown}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Report {
        Report::new(TaskKind::Classify)
            .metric("accuracy", 0.875)
            .metric("macro_f1", 0.5)
            .count("n", 8)
            .timing("eval_s", 1.5)
    }

    #[test]
    fn json_is_flat_with_the_reference_names() {
        assert_eq!(
            sample().to_json(),
            json!({"accuracy": 0.875, "macro_f1": 0.5, "n": 8})
        );
    }

    #[test]
    fn table_lists_metrics_then_counts() {
        let t = sample().table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "metric    value");
        assert_eq!(lines[2], "accuracy  0.8750");
        assert_eq!(lines[3], "macro_f1  0.5000");
        assert_eq!(lines[4], "n         8");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn lookups_find_by_name() {
        let r = sample();
        assert_eq!(r.metric_f64("accuracy"), Some(0.875));
        assert_eq!(r.count_of("n"), 8);
        assert_eq!(r.count_of("steps"), 0);
        assert_eq!(r.timing_of("eval_s"), 1.5);
    }
}
