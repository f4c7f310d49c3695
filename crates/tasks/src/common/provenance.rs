//! The data entries of `tasklm.json`: each file a run read, with its sha256 and record count.

use crate::{Result, TaskError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Hex sha256 of a file.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| TaskError::File {
        path: path.into(),
        msg: e.to_string(),
    })?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// `{"path", "sha256", "records"}` of a data file.
pub fn data_entry(path: &Path, records: usize) -> Result<Value> {
    Ok(json!({
        "path": path.display().to_string(),
        "sha256": file_sha256(path)?,
        "records": records,
    }))
}

/// `{"train": entry, "eval": entry or null}` of a run that read `train` and maybe `eval`, each a
/// single file with its record count.
pub fn data_section(train: (&Path, usize), eval: Option<(&Path, usize)>) -> Result<Value> {
    Ok(json!({
        "train": data_entry(train.0, train.1)?,
        "eval": match eval {
            Some((p, n)) => data_entry(p, n)?,
            None => Value::Null,
        },
    }))
}

/// `{"path", "files": [{"path", "sha256"}], "records"}` of data read from several files (a
/// translation prefix and its two sides).
pub fn data_entry_files(
    path: &Path,
    files: &[std::path::PathBuf],
    records: usize,
) -> Result<Value> {
    let files = files
        .iter()
        .map(|f| Ok(json!({"path": f.display().to_string(), "sha256": file_sha256(f)?})))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "path": path.display().to_string(),
        "files": files,
        "records": records,
    }))
}
