//! `eval --predictions FILE`: one JSON line per record, every task's writer. Each line is
//! flushed as it is written, so an interrupted evaluation keeps what it scored.

use crate::{Result, TaskError};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct PredictionsFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl PredictionsFile {
    pub fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| TaskError::File {
            path: path.into(),
            msg: format!("cannot write predictions: {e}"),
        })?;
        Ok(Self {
            path: path.into(),
            out: std::io::BufWriter::new(file),
        })
    }

    pub fn write(&mut self, line: &Value) -> Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| self.error(e))
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> TaskError {
        TaskError::File {
            path: self.path.clone(),
            msg: e.to_string(),
        }
    }
}

/// Writes `lines` to a new `path`, one JSON object per line.
pub fn write_predictions(path: &Path, lines: impl IntoIterator<Item = Value>) -> Result<()> {
    let mut f = PredictionsFile::create(path)?;
    for line in lines {
        f.write(&line)?;
    }
    f.finish()
}
