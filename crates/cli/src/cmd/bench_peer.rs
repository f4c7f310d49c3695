//! Running a Python peer for a side-by-side bench: its script and its input written to temp
//! files, the script run with the given flags, both files removed, and the JSON object on its
//! last stdout line returned.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::process::Command;

/// Runs `script` (the peer's source) with `python`, passing the input file as `input_flag`
/// followed by `args`; `name` tells the temp files apart.
pub fn run_peer(
    python: &str,
    name: &str,
    script: &str,
    input_flag: &str,
    input: &str,
    args: &[(&str, String)],
) -> Result<Value> {
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    let script_path = dir.join(format!("tasklm-peer-{name}-{pid}.py"));
    let input_path = dir.join(format!("tasklm-peer-{name}-input-{pid}.json"));
    std::fs::write(&script_path, script)?;
    std::fs::write(&input_path, input)?;
    let mut cmd = Command::new(python);
    cmd.arg(&script_path).arg(input_flag).arg(&input_path);
    for (flag, value) in args {
        cmd.arg(flag).arg(value);
    }
    let out = cmd.output();
    let _ = std::fs::remove_file(&script_path);
    let _ = std::fs::remove_file(&input_path);
    let out = out.with_context(|| format!("running the peer with `{python}`"))?;
    if !out.status.success() {
        bail!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().context("peer printed nothing")?;
    serde_json::from_str(line).context("peer output")
}

/// The number `key` of a peer's output, or an error naming it.
pub fn peer_num(v: &Value, key: &str) -> Result<f64> {
    v[key].as_f64().with_context(|| format!("peer {key}"))
}

/// `pytorch VERSION` from a peer's `torch` field (`pytorch` when it printed none).
pub fn peer_name(v: &Value) -> String {
    match v["torch"].as_str() {
        Some(version) => format!("pytorch {version}"),
        None => "pytorch".into(),
    }
}
