//! Counters, gauges and histograms the server exports at `GET /metrics` in Prometheus' text
//! format (version 0.0.4): requests by endpoint and status, tokens in and out, queue depth
//! and running rows, time to first token and per-token latency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram with Prometheus' buckets, sum and count.
#[derive(Default)]
pub struct Histogram {
    counts: Mutex<([u64; BUCKETS.len()], f64, u64)>,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut g = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (i, &b) in BUCKETS.iter().enumerate() {
            if s <= b {
                g.0[i] += 1;
            }
        }
        g.1 += s;
        g.2 += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let g = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in BUCKETS.iter().zip(&g.0) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", g.2);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", g.1, g.2);
    }
}

/// Every figure the server exports.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Requests waiting for a slot in a running batch.
    pub queued: AtomicU64,
    /// Rows decoding now.
    pub running: AtomicU64,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
    pub request_duration: Histogram,
}

impl Metrics {
    /// Counts one answered request.
    pub fn count_request(&self, endpoint: &str, status: u16) {
        let mut g = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *g.entry((endpoint.to_string(), status)).or_insert(0) += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tasklm_requests_total HTTP requests answered, by endpoint and status.\n# TYPE tasklm_requests_total counter\n");
        for ((endpoint, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let endpoint = endpoint.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "tasklm_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            (
                "tasklm_prompt_tokens_total",
                "Prompt tokens read.",
                &self.prompt_tokens,
            ),
            (
                "tasklm_completion_tokens_total",
                "Tokens generated.",
                &self.completion_tokens,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "tasklm_queue_depth",
                "Requests waiting for a slot in a running batch.",
                &self.queued,
            ),
            (
                "tasklm_running_rows",
                "Sequences decoding now.",
                &self.running,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        self.time_to_first_token.render(
            &mut out,
            "tasklm_time_to_first_token_seconds",
            "From a generation request's arrival to its first token.",
        );
        self.inter_token_latency.render(
            &mut out,
            "tasklm_inter_token_latency_seconds",
            "Between consecutive tokens of one sequence.",
        );
        self.request_duration.render(
            &mut out,
            "tasklm_request_duration_seconds",
            "From a request's arrival to its answer (to the end of a stream).",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.count_request("/v1/models", 200);
        m.count_request("/v1/models", 200);
        m.time_to_first_token.observe(Duration::from_millis(20));
        m.time_to_first_token.observe(Duration::from_secs(2));
        let text = m.render();
        assert!(text.contains("tasklm_requests_total{endpoint=\"/v1/models\",status=\"200\"} 2"));
        assert!(text.contains("tasklm_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("tasklm_time_to_first_token_seconds_bucket{le=\"2.5\"} 2"));
        assert!(text.contains("tasklm_time_to_first_token_seconds_count 2"));
    }
}
