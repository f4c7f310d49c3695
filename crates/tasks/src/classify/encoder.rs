//! Classification and NLI with an encoder: `[CLS] text [SEP]` or `[CLS] premise [SEP]
//! hypothesis [SEP]`, the pooled vector through dropout and a linear head, cross-entropy over
//! the labels. Saved as transformers' `BertForSequenceClassification` (`bert.*`,
//! `classifier.*`, `id2label`/`label2id` in `config.json`), so `AutoModelForSequenceClassification`
//! loads the output.

use super::decoder::{read_examples, LabelEval};
use super::prompt::LabelExample;
use crate::common::encoder_input::{EncodedPair, HeadedEncoder, HEAD_SEED};
use crate::common::encoder_runner::{
    fit_encoder, load_encoder_for, task_config, EncodedRows, EncoderObjective, EncoderTask,
};
use crate::common::lm_runner::TrainOutcome;
use crate::common::tasklm_json::saved_setting;
use crate::{Notice, Result, TaskError, TaskKind, TrainJob};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::{json, Value};
use std::path::Path;
use tasklm_data::{EncodeStats, Truncation, NLI_LABELS};
use tasklm_hub::EncoderCheckpoint;
use tasklm_models::EncoderInput;
use tasklm_nn::ops::per_token_cross_entropy;
use tasklm_train::trainer::{Metrics, Objective};

/// Default `--max-seq-len` for encoder classification.
pub const DEFAULT_MAX_LEN: usize = 128;
/// Rows encoded together at inference.
const INFER_BATCH: usize = 64;

/// The label set of `task`: NLI's three in the MNLI order, else the data's labels sorted
/// (numerically when they are all integers).
pub fn labels_for(task: TaskKind, examples: &[LabelExample]) -> Result<Vec<String>> {
    if task == TaskKind::Nli {
        return Ok(NLI_LABELS.iter().map(|s| s.to_string()).collect());
    }
    sorted_labels(
        examples.iter().filter_map(|e| e.label.clone()),
        "a classifier",
    )
}

/// The distinct `labels` sorted (numerically when every one is an integer); two at least,
/// else an error saying what `model` ("a classifier") needs.
pub(crate) fn sorted_labels(
    labels: impl Iterator<Item = String>,
    model: &str,
) -> Result<Vec<String>> {
    let mut l: Vec<String> = labels.collect();
    l.sort();
    l.dedup();
    if l.iter().all(|x| x.parse::<i64>().is_ok()) {
        l.sort_by_key(|x| x.parse::<i64>().unwrap_or(0));
    }
    if l.len() < 2 {
        return Err(TaskError::Invalid(format!(
            "{model} needs at least two labels, the data has {l:?}"
        )));
    }
    Ok(l)
}

/// An encoder with a sequence-classification head over the pooled `[CLS]` vector.
pub struct EncoderClassifier(pub HeadedEncoder);

impl std::ops::Deref for EncoderClassifier {
    type Target = HeadedEncoder;
    fn deref(&self) -> &HeadedEncoder {
        &self.0
    }
}

impl EncoderClassifier {
    /// Builds the classifier over `ck`. Its own head is kept when its labels are `labels` (or
    /// `labels` is None); otherwise a fresh head for `labels` is drawn.
    pub fn new(
        ck: EncoderCheckpoint,
        labels: Option<Vec<String>>,
        max_len: usize,
        task: TaskKind,
        lora: Option<&tasklm_train::LoraTraining>,
    ) -> Result<Self> {
        Ok(Self(HeadedEncoder::new(ck, labels, max_len, task, lora)?))
    }

    /// Encodes one record's texts (`text`, or `premise` and `hypothesis`).
    pub fn encode(&self, ex: &LabelExample) -> Result<(EncodedPair, bool)> {
        let a = ex.fields.first().map_or("", |f| f.1.as_str());
        let b = ex.fields.get(1).map(|f| f.1.as_str());
        self.encoder.encode(a, b)
    }

    /// Logits (B, labels) for encoded rows; `train` turns dropout on.
    pub fn logits(&self, rows: &[EncodedPair], train: bool) -> Result<Tensor> {
        let input = EncoderInput::right_padded(rows, self.pad_id, &Device::Cpu)?;
        let hidden = self.bert.forward_t(&input, train)?; // (B, T, H)
        Ok(self.head.forward_t(&self.bert.pool(&hidden)?, train)?)
    }

    /// Label probabilities (softmax over the head's logits) for each example.
    pub fn probabilities(&self, examples: &[LabelExample]) -> Result<Vec<Vec<f64>>> {
        let mut out = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(INFER_BATCH) {
            let rows = chunk
                .iter()
                .map(|e| Ok(self.encode(e)?.0))
                .collect::<Result<Vec<_>>>()?;
            let probs = candle_nn::ops::softmax_last_dim(&self.logits(&rows, false)?)?;
            for p in probs.to_dtype(DType::F64)?.to_vec2::<f64>()? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// `{"label", "score"}` for one record.
    pub fn predict(&self, ex: &LabelExample) -> Result<Value> {
        let p = self
            .probabilities(std::slice::from_ref(ex))?
            .pop()
            .unwrap_or_default();
        let (best, score) = argmax(&p);
        Ok(json!({"label": self.labels[best], "score": score}))
    }

    /// `config.json` of the trained model (`BertForSequenceClassification`).
    fn config_json(&self) -> Value {
        task_config(
            &self.ck_config,
            "BertForSequenceClassification",
            Some(&self.labels),
        )
    }
}

fn argmax(p: &[f64]) -> (usize, f64) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// Accuracy and macro-F1 of `clf` on labelled `examples`, with a progress bar.
pub fn evaluate_examples(
    clf: &EncoderClassifier,
    examples: &[LabelExample],
    progress: bool,
) -> Result<LabelEval> {
    let bar = crate::common::progress::eval_bar(examples.len(), progress);
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    for chunk in examples.chunks(INFER_BATCH) {
        for (ex, p) in chunk.iter().zip(clf.probabilities(chunk)?) {
            truth.push(ex.label.clone().unwrap_or_default());
            pred.push(clf.labels[argmax(&p).0].clone());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(LabelEval::of(&truth, &pred))
}

/// An encoded, labelled record.
#[derive(Clone, Debug)]
pub struct Example {
    input: EncodedPair,
    label: u32,
}

/// Encodes `examples` against `clf`'s labels; counts cut records (or drops them with
/// `Truncation::Drop`).
fn encode_examples(
    clf: &EncoderClassifier,
    path: &Path,
    examples: &[LabelExample],
    truncation: Truncation,
) -> Result<(Vec<Example>, EncodeStats)> {
    let mut stats = EncodeStats::default();
    let mut out = Vec::with_capacity(examples.len());
    for (i, ex) in examples.iter().enumerate() {
        let label = ex.label.as_deref().unwrap_or_default();
        let k = clf
            .labels
            .iter()
            .position(|l| l == label)
            .ok_or_else(|| TaskError::File {
                path: path.into(),
                msg: format!(
                    "record {}: label `{label}` is not one of {:?}",
                    i + 1,
                    clf.labels
                ),
            })?;
        let (input, cut) = clf.encode(ex)?;
        if cut {
            if truncation == Truncation::Drop {
                stats.dropped += 1;
                continue;
            }
            stats.truncated += 1;
        }
        out.push(Example {
            input,
            label: k as u32,
        });
    }
    Ok((out, stats))
}

impl EncoderTask for EncoderClassifier {
    type Row = Example;
    type EvalRecord = LabelExample;

    fn lora(&self) -> Option<&crate::common::encoder_input::EncoderLora> {
        self.0.lora.as_ref()
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.0.params()
    }

    fn row_len(row: &Example) -> usize {
        row.input.0.len()
    }

    fn loss(&self, rows: &[&Example]) -> Result<(Tensor, usize)> {
        let inputs: Vec<EncodedPair> = rows.iter().map(|e| e.input.clone()).collect();
        let labels: Vec<u32> = rows.iter().map(|e| e.label).collect();
        let logits = self.logits(&inputs, true)?; // (B, C)
        let labels = Tensor::from_vec(labels, rows.len(), &Device::Cpu)?;
        let sum = per_token_cross_entropy(&logits, &labels)?.sum_all()?;
        Ok((sum, rows.len()))
    }

    fn metrics(&self, records: &[LabelExample]) -> Result<Metrics> {
        let e = evaluate_examples(self, records, false)?;
        Ok(vec![
            ("accuracy".into(), e.accuracy),
            ("macro_f1".into(), e.macro_f1),
        ])
    }

    fn config_json(&self) -> Value {
        EncoderClassifier::config_json(self)
    }

    fn tokenizer_dir(&self) -> &Path {
        &self.ck_dir
    }
}

/// A training objective over already-encoded rows and label indices (benchmarks), without
/// evaluation data or files.
pub fn objective_for_rows(
    clf: EncoderClassifier,
    rows: Vec<EncodedPair>,
    labels: Vec<u32>,
) -> Box<dyn Objective> {
    let train = rows
        .into_iter()
        .zip(labels)
        .map(|(input, label)| Example { input, label })
        .collect();
    Box::new(EncoderObjective {
        task: clf,
        train,
        eval: Vec::new(),
        provenance: Value::Null,
        adapter: None,
    })
}

/// Reads `path` for `task`, telling about skipped rows.
fn read_labelled(task: TaskKind, path: &Path, notice: Notice) -> Result<Vec<LabelExample>> {
    let (examples, skipped) = read_examples(task, path)?;
    if skipped > 0 {
        notice(&format!(
            "{}: {skipped} rows without an NLI label skipped",
            path.display()
        ));
    }
    Ok(examples)
}

/// `tasklm train --task classify|nli` with an encoder.
pub fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    let task = job.task;
    let train_ex = read_labelled(task, &job.data, notice)?;
    let eval_ex = match &job.eval {
        Some(p) => read_labelled(task, p, notice)?,
        None => Vec::new(),
    };
    let (_, ck) = load_encoder_for(&job.model, task, job.progress)?;
    let max_len = job.max_seq_len.unwrap_or(DEFAULT_MAX_LEN);
    let lora = crate::common::lora_out::job_lora(job, tasklm_hub::ModelKind::Encoder);
    let labels = Some(labels_for(task, &train_ex)?);
    let clf = EncoderClassifier::new(ck, labels, max_len, task, lora.as_ref())?;
    if !clf.trained_head {
        notice(&format!(
            "new classification head for labels {:?} (the checkpoint has none for them)",
            clf.labels
        ));
    }
    let (train, stats) = encode_examples(&clf, &job.data, &train_ex, job.truncation)?;
    if stats.truncated + stats.dropped > 0 {
        notice(&format!(
            "{}: {} of {} records are longer than --max-seq-len {}: {} cut longest-first, {} dropped",
            job.data.display(),
            stats.truncated + stats.dropped,
            train_ex.len(),
            clf.encoder.max_len,
            stats.truncated,
            stats.dropped
        ));
    }
    let max_seq_len = clf.encoder.max_len;
    let extra = json!({ "labels": clf.labels });
    let data = EncodedRows {
        records: train_ex.len(),
        kept: train.len(),
        rows: train,
        stats,
    };
    fit_encoder(job, clf, data, eval_ex, (max_seq_len, extra))
}

/// Loads `model` as an encoder classifier for `task`. A model without a trained head gets a
/// fresh (untrained) one for the labels of `examples`, and `notice` says so.
pub fn load_for_eval(
    task: TaskKind,
    model: &str,
    examples: &[LabelExample],
    max_len: Option<usize>,
    notice: Notice,
) -> Result<EncoderClassifier> {
    let (source, ck) = load_encoder_for(model, task, true)?;
    let has_head = ck.labels().is_some() && ck.tensors.contains_key("classifier.weight");
    let labels = if has_head {
        None
    } else {
        notice(&format!(
            "{model} has no trained classification head: scoring an untrained head (seed {HEAD_SEED})"
        ));
        Some(labels_for(task, examples)?)
    };
    let trained_len = saved_setting(&source, "max_seq_len");
    EncoderClassifier::new(
        ck,
        labels,
        max_len.or(trained_len).unwrap_or(DEFAULT_MAX_LEN),
        task,
        None,
    )
}
