//! JSONL input of the commands that answer record by record: a file, or stdin for `-` or none.

use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;

/// A reader over `path` (stdin for `-` or None) and the name errors give it.
pub fn open_jsonl(path: Option<&Path>) -> Result<(Box<dyn BufRead>, String)> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            let file = std::fs::File::open(p).with_context(|| format!("{}", p.display()))?;
            Ok((
                Box::new(std::io::BufReader::new(file)),
                p.display().to_string(),
            ))
        }
        _ => Ok((
            Box::new(std::io::BufReader::new(std::io::stdin())),
            "stdin".to_string(),
        )),
    }
}

/// Calls `f` with each non-blank line parsed as JSON and its line number (1-based).
pub fn for_each_record(
    path: Option<&Path>,
    mut f: impl FnMut(serde_json::Value, usize, &str) -> Result<()>,
) -> Result<()> {
    let (reader, name) = open_jsonl(path)?;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: reading line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{name}:{}: invalid JSON", i + 1))?;
        f(v, i + 1, &name)?;
    }
    Ok(())
}
