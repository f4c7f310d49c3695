//! `--task image-classify`: a ViT with a linear head on its `[CLS]` vector, trained with
//! cross-entropy on labelled images (a folder with a subfolder per class, or JSONL of
//! `{"image", "label"}`), from a pretrained directory or from a `config.json` alone. The
//! trained directory is transformers' `ViTForImageClassification` (`config.json` with
//! `id2label`, `model.safetensors`, `preprocessor_config.json`) plus `tasklm.json`. `eval`
//! reports accuracy and macro-F1; `predict` answers `{"image": PATH}` with
//! `{"label", "score"}`.

pub mod data;
pub mod model;

use crate::classify::decoder::LabelEval;
use crate::common::lm_runner::train_options;
use crate::common::provenance::{data_entry, data_entry_files};
use crate::common::tasklm_json::write_tasklm_json;
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskKind, TrainJob,
};
use candle_core::{Tensor, Var};
use data::{labels_of, read_examples, ImageExample};
use model::VisionClassifier;
use serde_json::{json, Value};
use std::path::Path;
use tasklm_train::trainer::{LossSum, Metrics, Objective};
use tasklm_train::TrainError;

/// A [`TaskError::File`] naming `path`.
pub(crate) fn file_err(path: &Path, msg: impl std::fmt::Display) -> TaskError {
    TaskError::File {
        path: path.into(),
        msg: msg.to_string(),
    }
}

/// The image classification family.
pub struct ImageClassify;

impl crate::TaskFamily for ImageClassify {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        train(job, notice)
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        let clf = VisionClassifier::load(Path::new(&job.model), None, job.seed, notice)?;
        let mut examples = read_examples(&job.data)?;
        examples.truncate(job.limit.unwrap_or(usize::MAX));
        let set = prepare(&clf, &examples)?;
        let e = evaluate_set(&clf, &set)?;
        Ok(Report::new(job.task)
            .metric("accuracy", e.accuracy)
            .metric("macro_f1", e.macro_f1)
            .count("n", e.n as u64))
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        let quiet = |_: &str| {};
        Ok(Box::new(VisionClassifier::load(
            Path::new(&job.model),
            None,
            0,
            &quiet,
        )?))
    }
}

impl Predictor for VisionClassifier {
    fn task(&self) -> TaskKind {
        TaskKind::ImageClassify
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records
            .iter()
            .map(|r| {
                let image = r.get("image").and_then(Value::as_str).ok_or_else(|| {
                    TaskError::Invalid(
                        "expected a string field `image` (a PNG or JPEG path)".into(),
                    )
                })?;
                let px = self.pixels(Path::new(image))?;
                let p = self.probabilities(&[px])?.pop().unwrap_or_default();
                let (best, score) = argmax(&p);
                Ok(json!({"label": self.labels[best], "score": score}))
            })
            .collect()
    }
}

fn argmax(p: &[f64]) -> (usize, f64) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// Labelled images preprocessed once: pixels (3, S, S) and the label's index.
struct Prepared {
    pixels: Vec<Tensor>,
    labels: Vec<u32>,
}

fn prepare(clf: &VisionClassifier, examples: &[ImageExample]) -> Result<Prepared> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for ex in examples {
        let Some(label) = &ex.label else {
            return Err(file_err(&ex.image, "no label"));
        };
        let id = clf.labels.iter().position(|l| l == label).ok_or_else(|| {
            file_err(
                &ex.image,
                format!(
                    "label `{label}` is not one of the model's ({})",
                    clf.labels.join(", ")
                ),
            )
        })?;
        pixels.push(clf.pixels(&ex.image)?);
        labels.push(id as u32);
    }
    Ok(Prepared { pixels, labels })
}

fn evaluate_set(clf: &VisionClassifier, set: &Prepared) -> Result<LabelEval> {
    let probs = clf.probabilities(&set.pixels)?;
    let truth: Vec<String> = set
        .labels
        .iter()
        .map(|&i| clf.labels[i as usize].clone())
        .collect();
    let pred: Vec<String> = probs
        .iter()
        .map(|p| clf.labels[argmax(p).0].clone())
        .collect();
    Ok(LabelEval::of(&truth, &pred))
}

/// The classifier and its preprocessed data as the trainer's [`Objective`].
struct ImageObjective {
    clf: VisionClassifier,
    train: Prepared,
    eval: Option<Prepared>,
    provenance: Value,
}

impl Objective for ImageObjective {
    fn params(&self) -> Vec<(String, Var)> {
        self.clf.params()
    }

    fn train_len(&self) -> usize {
        self.train.pixels.len()
    }

    fn train_loss(&self, indices: &[usize]) -> tasklm_train::Result<LossSum> {
        let run = || -> Result<LossSum> {
            let px: Vec<Tensor> = indices
                .iter()
                .map(|&i| self.train.pixels[i].clone())
                .collect();
            let labels: Vec<i64> = indices
                .iter()
                .map(|&i| i64::from(self.train.labels[i]))
                .collect();
            let logits = self.clf.logits(&Tensor::stack(&px, 0)?, true)?; // (B, labels)
            let labels = Tensor::new(labels.as_slice(), logits.device())?;
            let (sum, scored) = tasklm_nn::ops::masked_cross_entropy(&logits, &labels)?;
            Ok(LossSum {
                sum,
                scored,
                tokens: indices.len(),
            })
        };
        run().map_err(TrainError::objective)
    }

    fn evaluate(&self) -> tasklm_train::Result<Option<Metrics>> {
        let Some(set) = &self.eval else {
            return Ok(None);
        };
        let e = evaluate_set(&self.clf, set).map_err(TrainError::objective)?;
        Ok(Some(vec![
            ("accuracy".into(), e.accuracy),
            ("macro_f1".into(), e.macro_f1),
        ]))
    }

    fn write_files(&self, dir: &Path) -> tasklm_train::Result<()> {
        let write = |name: &str, v: &Value| -> Result<()> {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(v).map_err(|e| file_err(&path, e))?;
            std::fs::write(&path, text + "\n").map_err(|e| file_err(&path, e))
        };
        write("config.json", &self.clf.config_json()).map_err(TrainError::objective)?;
        write(tasklm_data::PREPROCESSOR_CONFIG, &self.clf.processor_json)
            .map_err(TrainError::objective)?;
        write_tasklm_json(dir, &self.provenance).map_err(TrainError::objective)
    }
}

/// `tasklm.json`'s entry of a data set: a JSONL file with its sha256, or a class folder with
/// every image's.
fn data_of(path: &Path, examples: &[ImageExample]) -> Result<Value> {
    if path.is_dir() {
        let files: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
        data_entry_files(path, &files, examples.len())
    } else {
        data_entry(path, examples.len())
    }
}

fn train(job: &TrainJob, notice: Notice) -> Result<Report> {
    let examples = read_examples(&job.data)?;
    let labels = labels_of(&examples)?;
    let clf = VisionClassifier::load(
        Path::new(&job.model),
        Some(labels.clone()),
        job.args.seed,
        notice,
    )?;
    let train = prepare(&clf, &examples)?;
    let eval_examples = job.eval.as_deref().map(read_examples).transpose()?;
    let eval = eval_examples
        .as_deref()
        .map(|e| prepare(&clf, e))
        .transpose()?;
    let provenance = json!({
        "task": job.task.name(),
        "base_model": job.model,
        "labels": labels,
        "data": {
            "train": data_of(&job.data, &examples)?,
            "eval": match (job.eval.as_deref(), eval_examples.as_deref()) {
                (Some(p), Some(e)) => data_of(p, e)?,
                _ => Value::Null,
            },
        },
        "train_args": job.args,
    });
    let obj = ImageObjective {
        clf,
        train,
        eval,
        provenance,
    };
    let s = tasklm_train::train(&obj, &job.args, train_options(job))?;
    let mut r = Report::new(job.task)
        .count("steps", s.steps)
        .count("records", examples.len() as u64)
        .count("images", s.tokens as u64)
        .count("refused", s.refused)
        .timing("train_s", s.elapsed_s);
    for (k, v) in s.final_eval.iter().flatten() {
        r = r.metric(k.clone(), *v);
    }
    r.losses = s.losses;
    Ok(r)
}
