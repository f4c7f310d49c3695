//! The figures one bench measured, in the form `tasklm bench all` collects them: every bench
//! run with the hidden `--figures FILE` appends one JSON line per figure to FILE, and `bench
//! all` reads them back from the children it ran and prints one table.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One measured figure: tasklm's value, and the peer's from the same run where there was one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The bench that measured it (`train`, `encoder`, `embed`, `generate`).
    pub bench: String,
    /// What was measured, with its setting (`SmolLM2-135M 8 x 256 training`).
    pub figure: String,
    /// `tokens/s`, `sentences/s`, ...: higher is better for every unit used.
    pub unit: String,
    pub tasklm: f64,
    #[serde(default)]
    pub peer: Option<f64>,
    /// The peer and its version (`pytorch 2.15.0`, `llama.cpp 0.3.36`).
    #[serde(default)]
    pub peer_name: Option<String>,
    #[serde(default)]
    pub tasklm_peak_rss_bytes: Option<u64>,
    #[serde(default)]
    pub peer_peak_rss_bytes: Option<u64>,
}

impl Figure {
    /// A figure of tasklm alone; [`Figure::with_peer`] adds the peer's side.
    pub fn new(bench: &str, figure: String, unit: &str, tasklm: f64) -> Self {
        Self {
            bench: bench.into(),
            figure,
            unit: unit.into(),
            tasklm,
            peer: None,
            peer_name: None,
            tasklm_peak_rss_bytes: None,
            peer_peak_rss_bytes: None,
        }
    }

    pub fn with_peer(mut self, name: &str, value: f64) -> Self {
        self.peer = Some(value);
        self.peer_name = Some(name.into());
        self
    }

    pub fn with_rss(mut self, tasklm: Option<u64>, peer: Option<u64>) -> Self {
        self.tasklm_peak_rss_bytes = tasklm;
        self.peer_peak_rss_bytes = peer;
        self
    }

    /// tasklm over the peer (above 1: tasklm is faster).
    pub fn ratio(&self) -> Option<f64> {
        self.peer.filter(|p| *p > 0.0).map(|p| self.tasklm / p)
    }
}

/// Appends `figures` to `path` as JSON lines; nothing when `path` is None.
pub fn append(path: Option<&Path>, figures: &[Figure]) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {} to append figures", path.display()))?;
    for fig in figures {
        writeln!(f, "{}", serde_json::to_string(fig)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The figures of a file [`append`] wrote; a line that is not a figure is an error naming it.
pub fn parse(text: &str, name: &str) -> Result<Vec<Figure>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{name}:{}: not a bench figure: {l:?}", i + 1))
        })
        .collect()
}

fn gib(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| format!("{:.2}", b as f64 / 1e9))
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A Markdown table of `figures`, one row each, to paste into the README as it is.
pub fn render_rows(figures: &[Figure]) -> String {
    let mut s = String::from(
        "| bench | figure | unit | tasklm | peer | peer value | ratio | tasklm peak RSS GB | peer peak RSS GB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.bench,
            f.figure,
            f.unit,
            num(f.tasklm),
            f.peer_name.as_deref().unwrap_or("-"),
            f.peer.map_or("-".into(), num),
            f.ratio().map_or("-".into(), |r| format!("{r:.2}x")),
            gib(f.tasklm_peak_rss_bytes),
            gib(f.peer_peak_rss_bytes),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_through_a_file_and_render_with_their_ratio() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("figures.jsonl");
        let a = Figure::new("train", "8 x 256 training".into(), "tokens/s", 90.0)
            .with_peer("pytorch 2.15.0", 100.0)
            .with_rss(Some(8_600_000_000), Some(7_650_000_000));
        let b = Figure::new("embed", "batch 32".into(), "sentences/s", 250.0);
        append(Some(&path), std::slice::from_ref(&a))?;
        append(Some(&path), std::slice::from_ref(&b))?;
        let back = parse(&std::fs::read_to_string(&path)?, "figures.jsonl")?;
        assert_eq!(back, vec![a, b]);
        let table = render_rows(&back);
        assert!(
            table.contains("| train | 8 x 256 training | tokens/s | 90.0 | pytorch 2.15.0 | 100 | 0.90x | 8.60 | 7.65 |"),
            "{table}"
        );
        assert!(
            table.contains("| embed | batch 32 | sentences/s | 250 | - | - | - | - | - |"),
            "{table}"
        );
        Ok(())
    }

    #[test]
    fn a_line_that_is_not_a_figure_is_named() {
        let err = parse("{\"bench\": \"x\"}\n", "f.jsonl").unwrap_err();
        assert!(format!("{err:#}").contains("f.jsonl:1"), "{err:#}");
    }
}
