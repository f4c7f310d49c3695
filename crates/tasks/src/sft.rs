//! Instruction SFT (task family 1): `{prompt, completion}` or Alpaca JSONL, the loss on the
//! completion and EOS only, training on the shared trainer, and completion loss/perplexity as
//! the metric.

use crate::common::lm_runner::{
    default_max_seq_len, encode_each, fit_lm, load_for_training, report_encoding, EncodedFile,
    TrainOutcome,
};
use crate::common::provenance::{data_entry, data_entry_files};
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskFamily, TrainJob,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use tasklm_data::{encode_sft, pack, read_sft_jsonl, SftRecord, Truncation};
use tasklm_text::TextTokenizer;
use tasklm_train::lm_eval;

/// How sft records are cut, as the notice tells it.
const CUT: (&str, &str) = ("records", "truncated from the prompt's left");

/// The SFT family: train, evaluate (loss, perplexity); `predict` is `tasklm generate`.
pub struct Sft;

impl TaskFamily for Sft {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        Ok(train(job, notice)?.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        let records = read_sft_jsonl(&job.data)?;
        let loaded = tasklm_hub::load_decoder(&job.model, job.progress)?;
        let max_len = job
            .max_seq_len
            .unwrap_or_else(|| default_max_seq_len(loaded.config.max_position_embeddings));
        let file = encode_records(
            &job.data,
            &records,
            &loaded.tokenizer,
            max_len,
            job.truncation,
        )?;
        report_encoding(&job.data, &file, max_len, CUT, notice);
        let (loss, tokens) = lm_eval(
            loaded.model.as_ref(),
            &file.features,
            loaded.tokenizer.pad_id(),
            job.batch_size,
        )?;
        Ok(lm_report(job, loss, file.features.len(), tokens))
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        Err(not_served(job))
    }
}

/// The error of `predict` for a task answered by `tasklm generate` or `tasklm chat`.
pub(crate) fn not_served(job: &PredictJob) -> TaskError {
    TaskError::Invalid(format!(
        "predict serves the classification, tagging, QA and generative tasks; use `tasklm generate` or `tasklm chat` for {}",
        job.task
    ))
}

/// The report of a language-model evaluation: mean loss over the supervised tokens, its
/// exponential, records and tokens scored.
pub(crate) fn lm_report(job: &EvalJob, loss: f64, n: usize, tokens: usize) -> Report {
    Report::new(job.task)
        .metric("loss", loss)
        .metric("perplexity", loss.exp())
        .count("n", n as u64)
        .count("tokens", tokens as u64)
}

/// Reads and encodes `path`; records longer than `max_len` are truncated or dropped and counted.
pub fn encode_file(
    path: &Path,
    tok: &TextTokenizer,
    max_len: usize,
    truncation: Truncation,
) -> Result<EncodedFile> {
    encode_records(path, &read_sft_jsonl(path)?, tok, max_len, truncation)
}

/// Encodes records read from `path` (named in messages).
pub fn encode_records(
    path: &Path,
    records: &[SftRecord],
    tok: &TextTokenizer,
    max_len: usize,
    truncation: Truncation,
) -> Result<EncodedFile> {
    encode_each(path, records, max_len, "records", |rec, stats| {
        encode_sft(tok, rec, max_len, truncation, stats)
    })
}

/// Fine-tunes `job.model` on `job.data`, writing a Hugging Face model directory to `job.out`.
fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    // Read the data before the model, so a bad file fails in a moment.
    let train_records = read_sft_jsonl(&job.data)?;
    let eval_records = job.eval.as_deref().map(read_sft_jsonl).transpose()?;
    train_records_with(
        job,
        (&train_records, eval_records.as_deref()),
        json!({"task": "sft"}),
        None,
        notice,
    )
}

/// The files behind `job.data` and `job.eval` when each names several (a translation prefix
/// and its two sides); each file is hashed into `tasklm.json`.
#[derive(Clone, Debug, Default)]
pub struct DataFiles {
    pub train: Vec<PathBuf>,
    pub eval: Vec<PathBuf>,
}

/// SFT on records already read (`job.data` and `job.eval` name their files); the keys of
/// `meta` (at least `task`) go into `tasklm.json`. `files` lists what the two paths stand for
/// when they are not files themselves.
pub(crate) fn train_records_with(
    job: &TrainJob,
    (train_records, eval_records): (&[SftRecord], Option<&[SftRecord]>),
    meta: serde_json::Value,
    files: Option<&DataFiles>,
    notice: Notice,
) -> Result<TrainOutcome> {
    let source = tasklm_hub::resolve(&job.model, job.progress)?;
    let ck = load_for_training(job, &source, notice)?;
    let max_len = job
        .max_seq_len
        .unwrap_or_else(|| default_max_seq_len(ck.config.max_position_embeddings));
    if max_len < 2 {
        return Err(TaskError::Invalid(format!(
            "--max-seq-len {max_len}: must be at least 2"
        )));
    }
    let tok = ck.tokenizer.clone();
    let train_file = encode_records(&job.data, train_records, &tok, max_len, job.truncation)?;
    report_encoding(&job.data, &train_file, max_len, CUT, notice);
    let eval_file = match (&job.eval, eval_records) {
        (Some(p), Some(records)) => {
            let e = encode_records(p, records, &tok, max_len, job.truncation)?;
            report_encoding(p, &e, max_len, CUT, notice);
            Some(e)
        }
        _ => None,
    };
    let pack_rows = job.options.pack;
    let train_features = if pack_rows {
        pack(&train_file.features, max_len)?
    } else {
        train_file.features.clone()
    };
    let mut provenance = json!({
        "base_model": job.model,
        "max_seq_len": max_len,
        "truncation": format!("{:?}", job.truncation).to_lowercase(),
        "packing": pack_rows,
        "train_args": job.args,
    });
    let entry = |path: &Path, sides: Option<&Vec<PathBuf>>, records: usize| match sides {
        Some(sides) => data_entry_files(path, sides, records),
        None => data_entry(path, records),
    };
    provenance["data"] = json!({
        "train": entry(&job.data, files.map(|f| &f.train), train_file.records)?,
        "eval": match &job.eval {
            Some(p) => entry(
                p,
                files.map(|f| &f.eval),
                eval_file.as_ref().map_or(0, |e| e.records),
            )?,
            None => serde_json::Value::Null,
        },
    });
    if let (Some(p), serde_json::Value::Object(m)) = (provenance.as_object_mut(), meta) {
        p.extend(m);
    }
    fit_lm(
        job,
        ck,
        &tok,
        (train_features, &train_file),
        eval_file.as_ref(),
        provenance,
        max_len,
    )
}
