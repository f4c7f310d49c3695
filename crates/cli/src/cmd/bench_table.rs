//! The side-by-side table of `tasklm bench generate --peer llama.cpp`: one configuration's
//! measurement as a child process prints it, the per-row statistics over rounds, the header
//! (CPU, settings, date, build) and the rendering as text and as JSON.

use serde::Serialize;

/// One configuration measured in one process: what the tasklm child and the peer script print
/// as a JSON line.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    /// The process's peak resident set, when the platform reports it.
    pub peak_rss_bytes: Option<u64>,
    /// The first generated ids (a check that both sides decoded the same prompt).
    pub first_tokens: Vec<u32>,
}

/// A line that is not a measurement, naming who printed it and what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MeasurementError {
    #[error("{who} printed no JSON line on stdout")]
    NoLine { who: String },
    #[error("{who}'s last line is not JSON ({reason}): {line:?}")]
    NotJson {
        who: String,
        reason: String,
        line: String,
    },
    #[error("{who}'s JSON line has no positive finite number `{field}`: {line}")]
    BadField {
        who: String,
        field: &'static str,
        line: String,
    },
}

/// Parses the last non-empty line of `stdout` as a [`Measurement`]; `who` names the process
/// in errors.
pub fn parse_measurement(stdout: &str, who: &str) -> Result<Measurement, MeasurementError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| MeasurementError::NoLine { who: who.into() })?
        .trim();
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| MeasurementError::NotJson {
            who: who.into(),
            reason: e.to_string(),
            line: line.into(),
        })?;
    if !v.is_object() {
        return Err(MeasurementError::NotJson {
            who: who.into(),
            reason: "expected an object".into(),
            line: line.into(),
        });
    }
    let rate = |field: &'static str| {
        v[field]
            .as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| MeasurementError::BadField {
                who: who.into(),
                field,
                line: line.into(),
            })
    };
    let peak_rss_bytes = match &v["peak_rss_bytes"] {
        serde_json::Value::Null => None,
        x => Some(x.as_u64().ok_or_else(|| MeasurementError::BadField {
            who: who.into(),
            field: "peak_rss_bytes",
            line: line.into(),
        })?),
    };
    let first_tokens = v["first_tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Measurement {
        prefill_tokens_per_s: rate("prefill_tokens_per_s")?,
        decode_tokens_per_s: rate("decode_tokens_per_s")?,
        peak_rss_bytes,
        first_tokens,
    })
}

/// Median of `v` (the mean of the two middle values for an even count, as the peer scripts'
/// `statistics.median`); None when empty. Every bench figure's median is this one.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// Median and min-max of a figure over rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: Vec<f64>,
}

impl Spread {
    pub fn of(v: &[f64]) -> Option<Self> {
        Some(Self {
            median: median(v)?,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rounds: v.to_vec(),
        })
    }
}

/// One row of the table: tasklm and the peer on one phase of one configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// `decode f32`, `prefill f32`, `decode q4_1`, ...: stable, compared across sessions.
    pub label: String,
    pub tasklm_tokens_per_s: Spread,
    pub peer_tokens_per_s: Spread,
    /// tasklm's median over the peer's median.
    pub ratio: f64,
    /// The per-round ratios' range.
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// Highest over rounds (the same for a configuration's decode and prefill rows).
    pub tasklm_peak_rss_bytes: Option<u64>,
    pub peer_peak_rss_bytes: Option<u64>,
}

/// Both sides' measurements of one configuration, a round each.
#[derive(Clone, Debug, Default)]
pub struct ConfigRounds {
    pub tasklm: Vec<Measurement>,
    pub peer: Vec<Measurement>,
}

/// The decode and prefill rows of configuration `config`; None before any round finished.
pub fn rows_for(config: &str, r: &ConfigRounds) -> Option<[Row; 2]> {
    let n = r.tasklm.len().min(r.peer.len());
    if n == 0 {
        return None;
    }
    let peak = |m: &[Measurement]| m[..n].iter().filter_map(|m| m.peak_rss_bytes).max();
    let row = |phase: &str, f: fn(&Measurement) -> f64| -> Option<Row> {
        let ours: Vec<f64> = r.tasklm[..n].iter().map(f).collect();
        let theirs: Vec<f64> = r.peer[..n].iter().map(f).collect();
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        let (t, p) = (Spread::of(&ours)?, Spread::of(&theirs)?);
        let ratio = Spread::of(&ratios)?;
        Some(Row {
            label: format!("{phase} {config}"),
            ratio: t.median / p.median,
            ratio_min: ratio.min,
            ratio_max: ratio.max,
            tasklm_tokens_per_s: t,
            peer_tokens_per_s: p,
            tasklm_peak_rss_bytes: peak(&r.tasklm),
            peer_peak_rss_bytes: peak(&r.peer),
        })
    };
    Some([
        row("decode", |m| m.decode_tokens_per_s)?,
        row("prefill", |m| m.prefill_tokens_per_s)?,
    ])
}

/// The CPU model and the SIMD flags that matter to the kernels, from /proc/cpuinfo's text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cpu {
    pub model: String,
    pub flags: Vec<String>,
}

/// Flags worth printing, in this order.
const SIMD_FLAGS: [&str; 14] = [
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_int8",
    "amx_bf16",
];

impl Cpu {
    pub fn from_cpuinfo(text: &str) -> Self {
        let field = |name: &str| {
            text.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let have: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        Self {
            model: field("model name").unwrap_or_else(|| "unknown CPU".into()),
            flags: SIMD_FLAGS
                .iter()
                .filter(|f| have.iter().any(|h| h == *f))
                .map(|f| f.to_string())
                .collect(),
        }
    }

    pub fn detect() -> Self {
        Self::from_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
    }
}

/// The GGUF files one configuration ran on.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigFiles {
    pub config: String,
    pub tasklm_file: String,
    /// tasklm loads it `dequantized` (to f32) or `quantized` (`--quantized`).
    pub tasklm_load: String,
    pub peer_file: String,
}

fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Everything the table prints, and what `--json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    /// The command line that made the table (`tasklm ...`).
    pub command: String,
    pub model: String,
    pub files: Vec<ConfigFiles>,
    /// Where the requantised files are cached.
    pub cache_dir: String,
    pub cpu: Cpu,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub runs: usize,
    pub rounds: usize,
    pub date_utc: String,
    /// `tasklm VERSION (commit HASH)`.
    pub tasklm: String,
    pub peer: String,
    pub peer_system_info: String,
    pub rows: Vec<Row>,
    /// Notes on the run (configurations whose generated tokens differ between the two).
    pub notes: Vec<String>,
}

fn mib(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| {
        format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
    })
}

impl Table {
    /// A Markdown table under a header of the settings, to paste into the README as it is.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}\n{}; requantised files in {}\n",
            self.command, self.model, self.cache_dir
        );
        for f in &self.files {
            s.push_str(&format!(
                "  {}: tasklm {} {}, llama.cpp {}\n",
                f.config,
                file_name(&f.tasklm_file),
                f.tasklm_load,
                file_name(&f.peer_file)
            ));
        }
        s.push_str(&format!(
            "cpu: {} | {}\n{} threads | {} prompt tokens, {} new tokens, greedy | median of {} \
             rounds, each the median of {} runs | {}\n{} | peer: {}\npeer system info: {}\n\n",
            self.cpu.model,
            self.cpu.flags.join(" "),
            self.threads,
            self.prompt_tokens,
            self.new_tokens,
            self.rounds,
            self.runs,
            self.date_utc,
            self.tasklm,
            self.peer,
            self.peer_system_info,
        ));
        s.push_str(
            "| tokens/s | tasklm | llama.cpp | ratio | tasklm peak RSS | llama.cpp peak RSS |\n\
             |---|---|---|---|---|---|\n",
        );
        let fig = |x: &Spread| format!("{:.1} ({:.1}-{:.1})", x.median, x.min, x.max);
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {:.2}x ({:.2}-{:.2}) | {} | {} |\n",
                r.label,
                fig(&r.tasklm_tokens_per_s),
                fig(&r.peer_tokens_per_s),
                r.ratio,
                r.ratio_min,
                r.ratio_max,
                mib(r.tasklm_peak_rss_bytes),
                mib(r.peer_peak_rss_bytes),
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("\nnote: {n}"));
        }
        s
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch (proleptic Gregorian calendar).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// This process's peak resident set (`VmHWM` in /proc/self/status), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
#[path = "bench_table_tests.rs"]
mod tests;
