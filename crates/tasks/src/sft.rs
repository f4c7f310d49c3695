//! Instruction SFT (task family 1): `{prompt, completion}` or Alpaca JSONL, the loss on the
//! completion and EOS only, training on the shared trainer, and completion loss/perplexity as
//! the metric.

use crate::provenance::{data_entry, data_entry_files, write_tasklm_json};
use crate::{Result, TaskError};
use candle_core::{DType, Device};
use serde_json::json;
use std::path::{Path, PathBuf};
use tasklm_data::{encode_sft, pack, read_sft_jsonl, EncodeStats, Features, SftRecord, Truncation};
use tasklm_hub::{load_checkpoint, write_model_files};
use tasklm_text::TextTokenizer;
use tasklm_train::{
    lm_eval, trainable_decoder, LmObjective, TrainArgs, TrainOptions, TrainSummary,
};

/// Longest sequence trained on when `--max-seq-len` is not given: the model's context window
/// or 2048, whichever is smaller.
pub fn default_max_seq_len(context: usize) -> usize {
    context.min(2048)
}

/// A data file encoded for SFT.
#[derive(Clone, Debug)]
pub struct EncodedFile {
    pub features: Vec<Features>,
    /// Records read (kept + dropped).
    pub records: usize,
    pub stats: EncodeStats,
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

/// Encodes every record of `path` with `encode` (None: dropped, counted in the stats); an
/// error names the file, and a file whose every record is dropped is an error that counts
/// them as `noun`.
pub(crate) fn encode_each<R>(
    path: &Path,
    records: &[R],
    max_len: usize,
    noun: &str,
    mut encode: impl FnMut(&R, &mut EncodeStats) -> tasklm_data::Result<Option<Features>>,
) -> Result<EncodedFile> {
    let mut stats = EncodeStats::default();
    let mut features = Vec::with_capacity(records.len());
    for rec in records {
        let f = encode(rec, &mut stats).map_err(|e| TaskError::File {
            path: path.into(),
            msg: e.to_string(),
        })?;
        features.extend(f);
    }
    if features.is_empty() {
        return Err(TaskError::File {
            path: path.into(),
            msg: format!(
                "all {} {noun} are longer than --max-seq-len {max_len}",
                records.len()
            ),
        });
    }
    Ok(EncodedFile {
        features,
        records: records.len(),
        stats,
    })
}

/// One `tasklm train --task sft` run.
#[derive(Clone, Debug)]
pub struct SftJob {
    pub model: String,
    pub data: PathBuf,
    pub eval: Option<PathBuf>,
    pub out: PathBuf,
    pub max_seq_len: Option<usize>,
    pub truncation: Truncation,
    /// Pack several records into each sequence (block-diagonal attention).
    pub pack: bool,
    pub args: TrainArgs,
    pub resume: bool,
    pub progress: bool,
    /// Set to stop after the current update with a checkpoint (Ctrl-C).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct SftReport {
    pub summary: TrainSummary,
    pub train: EncodedStats,
    pub eval: Option<EncodedStats>,
    pub max_seq_len: usize,
    /// Sequences trained on (fewer than records when packed).
    pub sequences: usize,
}

/// Counts of an encoded file, without its features.
#[derive(Clone, Copy, Debug)]
pub struct EncodedStats {
    pub records: usize,
    pub kept: usize,
    pub stats: EncodeStats,
}

impl EncodedFile {
    pub fn counts(&self) -> EncodedStats {
        EncodedStats {
            records: self.records,
            kept: self.features.len(),
            stats: self.stats,
        }
    }
}

/// Reports of the encoding step (truncated and dropped records), printed before training so
/// nothing is silent.
pub type Notice<'a> = &'a dyn Fn(&str);

/// Fine-tunes `job.model` on `job.data`, writing a Hugging Face model directory to `job.out`.
pub fn train(job: &SftJob, notice: Notice) -> Result<SftReport> {
    // Read the data before the model, so a bad file fails in a moment.
    let train_records = read_sft_jsonl(&job.data)?;
    let eval_records = job.eval.as_deref().map(read_sft_jsonl).transpose()?;
    train_records_with(
        job,
        &train_records,
        eval_records.as_deref(),
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

/// [`train`] on records already read (`job.data` and `job.eval` name their files); the keys of
/// `meta` (at least `task`) go into `tasklm.json`. `files` lists what the two paths stand for
/// when they are not files themselves.
pub fn train_records_with(
    job: &SftJob,
    train_records: &[SftRecord],
    eval_records: Option<&[SftRecord]>,
    meta: serde_json::Value,
    files: Option<&DataFiles>,
    notice: Notice,
) -> Result<SftReport> {
    let source = tasklm_hub::resolve(&job.model, job.progress)?;
    let ck = load_checkpoint(&source, DType::F32, &Device::Cpu)?;
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
    report_encoding(&job.data, &train_file, max_len, notice);
    let eval_file = match (&job.eval, eval_records) {
        (Some(p), Some(records)) => {
            let e = encode_records(p, records, &tok, max_len, job.truncation)?;
            report_encoding(p, &e, max_len, notice);
            Some(e)
        }
        _ => None,
    };
    let train_features = if job.pack {
        pack(&train_file.features, max_len)?
    } else {
        train_file.features.clone()
    };
    let mut provenance = json!({
        "base_model": job.model,
        "max_seq_len": max_len,
        "truncation": format!("{:?}", job.truncation).to_lowercase(),
        "packing": job.pack,
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
        ck,
        &tok,
        train_features,
        &train_file,
        eval_file.as_ref(),
        provenance,
        RunSpec::of(job),
        max_len,
    )
}

/// Where a run writes and how it continues: the fields every language-model job shares.
pub(crate) struct RunSpec<'a> {
    pub out: &'a Path,
    pub args: &'a TrainArgs,
    pub resume: bool,
    pub progress: bool,
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

impl<'a> RunSpec<'a> {
    fn of(job: &'a SftJob) -> Self {
        Self {
            out: &job.out,
            args: &job.args,
            resume: job.resume,
            progress: job.progress,
            stop: job.stop.as_deref(),
        }
    }
}

/// Trains the decoder of `ck` on `train_features` (encoded from `train_file`), evaluating on
/// `eval_file`, and writes the model with `tok` and `provenance` as `tasklm.json`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_lm(
    ck: tasklm_hub::DecoderCheckpoint,
    tok: &TextTokenizer,
    train_features: Vec<Features>,
    train_file: &EncodedFile,
    eval_file: Option<&EncodedFile>,
    provenance: serde_json::Value,
    run: RunSpec,
    max_len: usize,
) -> Result<SftReport> {
    let (arch, cfg) = (ck.architecture, ck.config.clone());
    let (model, params) = trainable_decoder(arch, &cfg, ck.tensors)?;
    let files_tok = tok.clone();
    let obj = LmObjective {
        model,
        params,
        pad_id: tok.pad_id(),
        eval_batch_size: run.args.batch_size,
        train: train_features,
        eval: eval_file.map(|e| e.features.clone()).unwrap_or_default(),
        files: Box::new(move |dir: &Path| {
            write_model_files(dir, arch, &cfg, &files_tok)
                .map_err(tasklm_train::TrainError::objective)?;
            write_tasklm_json(dir, &provenance).map_err(tasklm_train::TrainError::objective)
        }),
    };
    let sequences = obj.train.len();
    let summary = tasklm_train::train(
        &obj,
        run.args,
        TrainOptions {
            out: run.out,
            resume: run.resume,
            progress: run.progress,
            stop: run.stop,
        },
    )?;
    Ok(SftReport {
        summary,
        train: train_file.counts(),
        eval: eval_file.map(EncodedFile::counts),
        max_seq_len: max_len,
        sequences,
    })
}

fn report_encoding(path: &Path, f: &EncodedFile, max_len: usize, notice: Notice) {
    let s = f.stats;
    if s.truncated > 0 || s.dropped > 0 {
        notice(&format!(
            "{}: {} of {} records are longer than --max-seq-len {max_len}: {} truncated from the \
             prompt's left, {} dropped",
            path.display(),
            s.truncated + s.dropped,
            f.records,
            s.truncated,
            s.dropped
        ));
    }
}

/// Completion loss and perplexity of a model on an SFT file.
#[derive(Clone, Debug)]
pub struct SftEval {
    pub loss: f64,
    pub perplexity: f64,
    /// Records scored.
    pub n: usize,
    /// Completion tokens scored (EOS included).
    pub tokens: usize,
    pub stats: EncodeStats,
}

/// `tasklm eval --task sft`: the mean loss over completion tokens and its exponential.
pub fn evaluate(
    model: &str,
    data: &Path,
    max_seq_len: Option<usize>,
    truncation: Truncation,
    batch_size: usize,
    notice: Notice,
) -> Result<SftEval> {
    let records = read_sft_jsonl(data)?;
    let loaded = tasklm_hub::load_decoder(model, true)?;
    let max_len =
        max_seq_len.unwrap_or_else(|| default_max_seq_len(loaded.config.max_position_embeddings));
    let file = encode_records(data, &records, &loaded.tokenizer, max_len, truncation)?;
    report_encoding(data, &file, max_len, notice);
    let (loss, tokens) = lm_eval(
        loaded.model.as_ref(),
        &file.features,
        loaded.tokenizer.pad_id(),
        batch_size,
    )?;
    Ok(SftEval {
        loss,
        perplexity: loss.exp(),
        n: file.features.len(),
        tokens,
        stats: file.stats,
    })
}
