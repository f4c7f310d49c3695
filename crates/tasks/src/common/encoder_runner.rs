//! The encoder training runner that classify, NLI, NER and QA share, written once: the model
//! resolved and checked to be an encoder, the task's encoded rows under one [`Objective`], the
//! shared trainer run, and the trained directory written as transformers' task model
//! (`config.json` with the task architecture and label maps, tokenizer files, `tasklm.json`).

use crate::common::lm_runner::{train_options, EncodedStats, TrainOutcome};
use crate::common::provenance::data_section;
use crate::common::tasklm_json::write_tasklm_json;
use crate::{Result, TaskError, TaskKind, TrainJob};
use candle_core::{Tensor, Var};
use serde_json::{json, Map, Value};
use std::path::Path;
use tasklm_data::EncodeStats;
use tasklm_train::trainer::{LossSum, Metrics, Objective};
use tasklm_train::TrainError;

/// What a task puts on the shared runner: its model (a backbone with the task's head), the
/// loss of a batch of its encoded rows, and its metric on evaluation records.
pub trait EncoderTask {
    /// One encoded training row (a sentence, a pair, a QA window).
    type Row;
    /// One evaluation record, scored as `tasklm eval` scores it.
    type EvalRecord;
    /// The trainable parameters, by `model.safetensors` name (PEFT's for LoRA).
    fn params(&self) -> Vec<(String, Var)>;
    /// A LoRA run's settings and adapted layers; None when every weight trains.
    fn lora(&self) -> Option<&crate::common::encoder_input::EncoderLora>;
    /// A row's length in tokens.
    fn row_len(row: &Self::Row) -> usize;
    /// The summed loss over `rows` (training mode: dropout on) and the units it scored.
    fn loss(&self, rows: &[&Self::Row]) -> Result<(Tensor, usize)>;
    /// The task's metrics on `records`.
    fn metrics(&self, records: &[Self::EvalRecord]) -> Result<Metrics>;
    /// `config.json` of the trained model.
    fn config_json(&self) -> Value;
    /// The directory whose tokenizer files go beside the trained model.
    fn tokenizer_dir(&self) -> &Path;
}

/// A task's rows and evaluation records as the trainer's [`Objective`].
pub struct EncoderObjective<T: EncoderTask> {
    pub task: T,
    pub train: Vec<T::Row>,
    pub eval: Vec<T::EvalRecord>,
    /// `tasklm.json`.
    pub provenance: Value,
    /// A LoRA run's `adapter_config.json`.
    pub adapter: Option<tasklm_hub::AdapterConfig>,
}

impl<T: EncoderTask> Objective for EncoderObjective<T> {
    fn params(&self) -> Vec<(String, Var)> {
        self.task.params()
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn train_lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.iter().map(T::row_len).collect())
    }

    fn train_loss(&self, indices: &[usize]) -> tasklm_train::Result<LossSum> {
        let picked: Vec<&T::Row> = indices.iter().filter_map(|&i| self.train.get(i)).collect();
        let (sum, scored) = self.task.loss(&picked).map_err(TrainError::objective)?;
        Ok(LossSum {
            sum,
            scored,
            tokens: picked.iter().map(|r| T::row_len(r)).sum(),
        })
    }

    fn evaluate(&self) -> tasklm_train::Result<Option<Metrics>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let m = self
            .task
            .metrics(&self.eval)
            .map_err(TrainError::objective)?;
        Ok(Some(m))
    }

    fn weights_file(&self) -> &str {
        match self.adapter {
            Some(_) => tasklm_hub::adapter::ADAPTER_WEIGHTS,
            None => "model.safetensors",
        }
    }

    fn write_files(&self, dir: &Path) -> tasklm_train::Result<()> {
        if let Some(a) = &self.adapter {
            a.write(dir).map_err(TrainError::objective)?;
        }
        // The task's config.json keeps the head's labels beside an adapter too.
        write_encoder_files(
            dir,
            &self.task.config_json(),
            self.task.tokenizer_dir(),
            &self.provenance,
        )
    }
}

/// A task's encoded training data.
pub struct EncodedRows<T: EncoderTask> {
    pub rows: Vec<T::Row>,
    /// Records read (a QA record may give several rows).
    pub records: usize,
    /// Records kept.
    pub kept: usize,
    pub stats: EncodeStats,
}

/// Trains `task` on `data` with the job's settings, evaluating on `eval`; `tasklm.json` gets
/// the task's `extra` keys besides the shared ones.
pub fn fit_encoder<T: EncoderTask>(
    job: &TrainJob,
    task: T,
    data: EncodedRows<T>,
    eval: Vec<T::EvalRecord>,
    (max_seq_len, extra): (usize, Value),
) -> Result<TrainOutcome> {
    let provenance = encoder_provenance(job, max_seq_len, (data.records, eval.len()), extra)?;
    let train = EncodedStats {
        records: data.records,
        kept: data.kept,
        stats: data.stats,
    };
    let adapter = task.lora().map(|(lora, layers)| {
        let task_type = crate::common::lora_out::encoder_task_type(job.task);
        crate::common::lora_out::adapter_config(lora, layers, task_type, task.tokenizer_dir())
    });
    let obj = EncoderObjective {
        task,
        train: data.rows,
        eval,
        provenance,
        adapter,
    };
    let summary = tasklm_train::train(&obj, &job.args, train_options(job))?;
    Ok(TrainOutcome {
        summary,
        train,
        max_seq_len,
        sequences: obj.train_len(),
    })
}

/// `tasklm.json` of an encoder run: task, base model, `--max-seq-len`, data files with their
/// sha256 and record counts, and the train args, plus the task's own `extra` keys.
fn encoder_provenance(
    job: &TrainJob,
    max_seq_len: usize,
    (train_records, eval_records): (usize, usize),
    extra: Value,
) -> Result<Value> {
    let mut p = json!({
        "task": job.task.name(),
        "base_model": job.model,
        "max_seq_len": max_seq_len,
        "data": data_section(
            (&job.data, train_records),
            job.eval.as_deref().map(|e| (e, eval_records)),
        )?,
        "train_args": job.args,
    });
    if let (Some(m), Value::Object(x)) = (p.as_object_mut(), extra) {
        m.extend(x);
    }
    Ok(p)
}

/// Resolves `model` and checks that it is an encoder (`task` needs one).
pub fn resolve_encoder(
    model: &str,
    task: TaskKind,
    progress: bool,
) -> Result<tasklm_hub::ModelSource> {
    let source = tasklm_hub::resolve(model, progress)?;
    if tasklm_hub::model_kind(&source)? != tasklm_hub::ModelKind::Encoder {
        return Err(TaskError::Invalid(format!(
            "{task} needs an encoder model (BERT family, e.g. all-minilm-l6-v2); `{model}` is a decoder"
        )));
    }
    Ok(source)
}

/// Resolves and loads `model` as an encoder for `task`.
pub fn load_encoder_for(
    model: &str,
    task: TaskKind,
    progress: bool,
) -> Result<(tasklm_hub::ModelSource, tasklm_hub::EncoderCheckpoint)> {
    let source = resolve_encoder(model, task, progress)?;
    let ck = tasklm_hub::load_encoder(&source, &candle_core::Device::Cpu)?;
    Ok((source, ck))
}

/// `config.json` of a trained encoder: the checkpoint's own keys, with the task architecture
/// and, for labelled heads, the label maps transformers reads (`id2label`, `label2id`).
pub fn task_config(base: &Value, architecture: &str, labels: Option<&[String]>) -> Value {
    let mut cfg = base.clone();
    if let Some(m) = cfg.as_object_mut() {
        m.insert("architectures".into(), json!([architecture]));
        if let Some(labels) = labels {
            let id2label: Map<String, Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), json!(l)))
                .collect();
            let label2id: Map<String, Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), json!(i)))
                .collect();
            m.insert("id2label".into(), Value::Object(id2label));
            m.insert("label2id".into(), Value::Object(label2id));
        }
        if architecture.ends_with("ForSequenceClassification") {
            m.insert("problem_type".into(), json!("single_label_classification"));
        }
    }
    cfg
}

/// Writes `config`, the tokenizer files of `tokenizer_dir` and `tasklm.json` into `dir`.
pub fn write_encoder_files(
    dir: &Path,
    config: &Value,
    tokenizer_dir: &Path,
    provenance: &Value,
) -> tasklm_train::Result<()> {
    let text = serde_json::to_string_pretty(config).map_err(TrainError::objective)?;
    let path = dir.join("config.json");
    std::fs::write(&path, text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    tasklm_hub::encoder::copy_tokenizer_files(tokenizer_dir, dir).map_err(TrainError::objective)?;
    write_tasklm_json(dir, provenance).map_err(TrainError::objective)
}
