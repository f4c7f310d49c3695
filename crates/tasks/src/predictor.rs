//! The one interface that answers records: `tasklm predict` uses it today, the server's task
//! endpoints tomorrow. One JSON record in, one JSON record out, in batches.

use crate::{Result, TaskError, TaskKind};
use serde_json::Value;

/// A loaded model answering records of its task (`{"text"}` -> `{"label", "score"}`, ...).
pub trait Predictor: Send + Sync {
    /// The task whose records it answers.
    fn task(&self) -> TaskKind;

    /// One answer per record, in order; each record succeeds or fails on its own, so a bad
    /// record in a batch is reported alone.
    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>>;

    /// The answer to one record.
    fn predict(&self, record: &Value) -> Result<Value> {
        self.predict_batch(std::slice::from_ref(record))
            .pop()
            .unwrap_or_else(|| Err(TaskError::Invalid("the predictor gave no answer".into())))
    }
}
