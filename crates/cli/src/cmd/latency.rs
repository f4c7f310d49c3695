//! Per-query latency percentiles printed to stderr as one `latency {json}` line, shared by
//! `index search --latency` and `rag --latency`.

use serde_json::{Map, Value};

/// Named series of seconds per query; reported as `{name}_ms_p50` and `{name}_ms_p99`.
#[derive(Default)]
pub struct Latency {
    series: Vec<(&'static str, Vec<f64>)>,
}

impl Latency {
    /// Records `seconds` in the series `name` (created on first use, reported in that order).
    pub fn record(&mut self, name: &'static str, seconds: f64) {
        match self.series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(seconds),
            None => self.series.push((name, vec![seconds])),
        }
    }

    /// The `queries` count (the first series' length) and every series' p50/p99 in ms.
    pub fn summary(&self) -> Value {
        let mut m = Map::new();
        let n = self.series.first().map_or(0, |(_, v)| v.len());
        m.insert("queries".into(), n.into());
        for (name, v) in &self.series {
            m.insert(format!("{name}_ms_p50"), percentile_ms(v, 0.5).into());
            m.insert(format!("{name}_ms_p99"), percentile_ms(v, 0.99).into());
        }
        Value::Object(m)
    }

    /// Prints the summary to stderr when `on`.
    pub fn report(&self, on: bool) {
        if on {
            eprintln!("latency {}", self.summary());
        }
    }
}

/// The nearest-rank percentile `q` of `seconds`, in milliseconds (0 for no values).
fn percentile_ms(seconds: &[f64], q: f64) -> f64 {
    let mut v = seconds.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).map_or(0.0, |s| s * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_per_series() {
        let mut l = Latency::default();
        for i in 1..=100 {
            l.record("search", i as f64 / 1e3);
            l.record("query", 2.0 * i as f64 / 1e3);
        }
        let s = l.summary();
        assert_eq!(s["queries"], 100);
        assert!((s["search_ms_p50"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!((s["search_ms_p99"].as_f64().unwrap() - 99.0).abs() < 1e-9);
        assert!((s["query_ms_p50"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn no_values_report_zero() {
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(Latency::default().summary()["queries"], 0);
    }
}
