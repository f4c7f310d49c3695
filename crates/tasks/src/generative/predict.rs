//! Answering one record of a generative task (`tasklm predict`, the server).

use super::{GenData, GenTask};
use crate::common::best_beam::best_beam_texts;
use crate::{Predictor, Result, TaskError, TaskKind};
use serde_json::{json, Value};
use tasklm_data::GenRecord;
use tasklm_generate::{generate, BeamParams, DecoderSteps, RowInput, SamplingParams};

/// A decoder answering one JSON record at a time for a generative task (`tasklm predict`).
pub struct GenPredictor {
    model: tasklm_hub::LoadedDecoder,
    data: GenData,
    sampling: SamplingParams,
    beam: Option<BeamParams>,
}

impl GenPredictor {
    pub fn load(model: &str, data: GenData, sampling: SamplingParams) -> Result<Self> {
        Ok(Self {
            model: tasklm_hub::load_decoder(model, true)?,
            data,
            sampling,
            beam: None,
        })
    }

    /// Beam search instead of greedy decoding (its best sequence, cut at the task's stops).
    pub fn with_beam(mut self, beam: Option<BeamParams>) -> Self {
        self.beam = beam;
        self
    }
}

impl Predictor for GenPredictor {
    fn task(&self) -> TaskKind {
        self.data.task.kind()
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records.iter().map(|r| self.predict_one(r)).collect()
    }
}

impl GenPredictor {
    /// `{"prediction"}` for a record with the task's input fields (see [`gen_record`]).
    fn predict_one(&self, record: &Value) -> Result<Value> {
        let r = gen_record(self.data.task, record)?;
        let ids = self.model.tokenizer.encode(&self.data.prompt(&r), true)?;
        if let Some(b) = &self.beam {
            let steps = DecoderSteps::new(self.model.model.as_ref(), self.model.tokenizer.pad_id());
            let rows = [RowInput::from_ids(ids)];
            let (tok, max_new) = (&self.model.tokenizer, self.sampling.max_new_tokens);
            let best = best_beam_texts(&steps, tok, &rows, b, max_new)?
                .into_iter()
                .next()
                .unwrap_or_default();
            let text = super::eval::cut_at_stop(&best, &self.sampling.stop);
            return Ok(json!({"prediction": text.trim()}));
        }
        let g = generate(
            self.model.model.as_ref(),
            &self.model.tokenizer,
            &[ids],
            &self.sampling,
            &mut |_, _| {},
        )?;
        let out = g.into_iter().next().map(|g| g.text).unwrap_or_default();
        Ok(json!({"prediction": out.trim()}))
    }
}

/// A record to answer for `task` from a JSON request with its input fields (`question`[,
/// `context`]; `dialogue`/`document`; `source`; `prompt`): a missing field the task needs is an
/// error naming it. Decoders and encoder-decoders read requests through it.
pub(crate) fn gen_record(task: GenTask, record: &Value) -> Result<GenRecord> {
    let text = |k: &str| record.get(k).and_then(Value::as_str).map(String::from);
    let fields: Vec<(String, String)> = [
        ("context", text("context")),
        ("question", text("question")),
        ("document", text("document").or_else(|| text("dialogue"))),
        ("source", text("source")),
        ("prompt", text("prompt")),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect();
    let needed = match task {
        GenTask::GenQa | GenTask::Reasoning => "question",
        GenTask::Summarize => "document",
        GenTask::Translate => "source",
        GenTask::Code => "prompt",
    };
    if !fields.iter().any(|f| f.0 == needed) {
        return Err(TaskError::Invalid(format!(
            "expected a string field `{needed}`{}",
            if needed == "document" {
                " (or `dialogue`)"
            } else {
                ""
            }
        )));
    }
    Ok(GenRecord {
        id: String::new(),
        fields,
        target: String::new(),
        references: Vec::new(),
        test: None,
    })
}
