//! The generative tasks on the SFT engine: generative QA, summarization, translation, code and
//! chain-of-thought reasoning. Each is a record format, a prompt, the SFT loss on the target
//! (+ EOS), batched generation, and the metric its field reports.

pub mod code_exec;
pub mod eval;
pub mod predict;

pub use eval::{evaluate, score, write_predictions, GenEvalOptions, Prediction, Scored};
pub use predict::GenPredictor;

use crate::common::lm_runner::TrainOutcome;
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskFamily, TaskKind,
    TaskOptions, TrainJob,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use tasklm_data::{read_generative, read_translation, translation_files, GenRecord, SftRecord};
use tasklm_generate::SamplingParams;

/// The generative family: genqa, summarize, translate, code, reasoning.
pub struct Generative;

impl TaskFamily for Generative {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        let task = gen_task(job.task)?;
        let data = GenData::new(task, &job.data, &job.options);
        let eval = job
            .eval
            .as_ref()
            .map(|p| GenData::new(task, p, &job.options));
        let outcome = if job.options.seq2seq.arch.is_some()
            || crate::seq2seq::is_seq2seq(&job.model, job.progress)?
        {
            crate::seq2seq::train(&data, eval.as_ref(), job, notice)?
        } else {
            train(&data, eval.as_ref(), job, notice)?
        };
        Ok(outcome.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, _notice: Notice) -> Result<Report> {
        let task = gen_task(job.task)?;
        let g = &job.generation;
        let sampling = SamplingParams {
            temperature: g.temperature,
            top_k: 0,
            top_p: if g.temperature > 0.0 { g.top_p } else { 1.0 },
            min_p: 0.0,
            seed: job.seed,
            max_new_tokens: g.max_new_tokens.unwrap_or(task.default_max_new_tokens()),
            stop: task.stops(),
            ..SamplingParams::default()
        };
        let opts = GenEvalOptions {
            sampling,
            samples: g.samples,
            limit: job.limit,
            batch_size: job.batch_size,
            python: g.python.clone(),
            progress: job.progress,
            beam: g.beam.clone(),
        };
        let data = GenData::new(task, &job.data, &job.options);
        let (metrics, preds) = if crate::seq2seq::is_seq2seq(&job.model, job.progress)? {
            crate::seq2seq::evaluate(&job.model, &data, &opts)?
        } else {
            evaluate(&job.model, &data, &opts)?
        };
        if let Some(p) = &g.predictions {
            write_predictions(p, &preds)?;
        }
        let mut r = Report::new(job.task);
        r.metrics = metrics;
        Ok(r.count("n", preds.len() as u64))
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        let task = gen_task(job.task)?;
        let max_new = job.options.max_new_tokens;
        let sampling = SamplingParams {
            stop: task.stops(),
            ..SamplingParams::greedy(max_new.unwrap_or(task.default_max_new_tokens()))
        };
        if crate::seq2seq::is_seq2seq(&job.model, job.progress)? {
            let p = crate::seq2seq::Seq2SeqPredictor::load(&job.model, task, sampling)?
                .with_beam(job.options.beam.clone());
            return Ok(Box::new(p));
        }
        let data = GenData::new(task, Path::new(""), &job.options);
        let p = GenPredictor::load(&job.model, data, sampling)?.with_beam(job.options.beam.clone());
        Ok(Box::new(p))
    }
}

fn gen_task(task: TaskKind) -> Result<GenTask> {
    task.generative()
        .ok_or_else(|| TaskError::Invalid(format!("{task} is not a generative task")))
}

/// The generative task families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenTask {
    GenQa,
    Summarize,
    Translate,
    Code,
    Reasoning,
}

impl GenTask {
    pub const ALL: [GenTask; 5] = [
        GenTask::GenQa,
        GenTask::Summarize,
        GenTask::Translate,
        GenTask::Code,
        GenTask::Reasoning,
    ];

    /// The task this is (the one mapping between the two enums).
    pub fn kind(self) -> TaskKind {
        match self {
            Self::GenQa => TaskKind::Genqa,
            Self::Summarize => TaskKind::Summarize,
            Self::Translate => TaskKind::Translate,
            Self::Code => TaskKind::Code,
            Self::Reasoning => TaskKind::Reasoning,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// Tokens generated per record by default.
    pub fn default_max_new_tokens(self) -> usize {
        match self {
            Self::GenQa => 32,
            Self::Summarize | Self::Translate => 128,
            Self::Code | Self::Reasoning => 384,
        }
    }

    /// Strings that end a generation besides EOS.
    pub fn stops(self) -> Vec<String> {
        match self {
            Self::GenQa => vec!["\n".into()],
            // The prompt's own layout: a model that goes on to a new question has answered.
            Self::Reasoning => vec!["\nQuestion:".into()],
            Self::Code => ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Language names for the translation prompt.
fn language(code: &str) -> String {
    match code {
        "en" => "English",
        "de" => "German",
        "fr" => "French",
        "cs" => "Czech",
        "es" => "Spanish",
        "it" => "Italian",
        other => other,
    }
    .to_string()
}

/// Where the records come from.
#[derive(Clone, Debug)]
pub struct GenData {
    pub task: GenTask,
    pub path: PathBuf,
    /// Translation: source and target language codes (file suffixes).
    pub langs: Option<(String, String)>,
}

impl GenData {
    /// The data of `task` at `path`, with the languages of `options` (translate).
    pub fn new(task: GenTask, path: &Path, options: &TaskOptions) -> Self {
        Self {
            task,
            path: path.to_path_buf(),
            langs: options.langs.clone(),
        }
    }

    /// The files a translation prefix stands for (None when `path` is the one data file).
    pub fn files(&self) -> Option<Vec<PathBuf>> {
        match (self.task, &self.langs) {
            (GenTask::Translate, Some((s, t))) if !self.path.is_file() => {
                Some(translation_files(&self.path, s, t))
            }
            _ => None,
        }
    }

    pub fn read(&self) -> Result<Vec<GenRecord>> {
        Ok(match (self.task, &self.langs) {
            (GenTask::Translate, Some((s, t))) => read_translation(&self.path, s, t)?,
            (GenTask::Translate, None) => {
                return Err(TaskError::Invalid(
                    "translate needs --src-lang and --tgt-lang (e.g. en, de)".into(),
                ))
            }
            (t, _) => read_generative(t.name(), &self.path)?,
        })
    }

    /// The prompt for a record; the model continues it with the target.
    pub fn prompt(&self, r: &GenRecord) -> String {
        match self.task {
            GenTask::GenQa if !r.field("context").is_empty() => format!(
                "Answer the question from the context.\n\nContext: {}\n\nQuestion: {}\nAnswer:",
                r.field("context"),
                r.field("question")
            ),
            GenTask::GenQa => format!("Question: {}\nAnswer:", r.field("question")),
            GenTask::Summarize => format!(
                "Summarize the following dialogue.\n\n{}\n\nSummary:",
                r.field("document")
            ),
            GenTask::Translate => {
                let (s, t) = self.langs.clone().unwrap_or_default();
                let (s, t) = (language(&s), language(&t));
                format!(
                    "Translate from {s} to {t}.\n\n{s}: {}\n{t}:",
                    r.field("source")
                )
            }
            GenTask::Code => r.field("prompt").to_string(),
            GenTask::Reasoning => format!("Question: {}\nAnswer:", r.field("question")),
        }
    }

    /// The completion trained on: the target after a space (code continues the prompt as is).
    pub fn completion(&self, r: &GenRecord) -> String {
        match self.task {
            GenTask::Code => r.target.clone(),
            _ => format!(" {}", r.target.trim()),
        }
    }

    /// SFT records (prompt -> completion) of `records`.
    pub fn sft_records(&self, records: &[GenRecord]) -> Vec<SftRecord> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| SftRecord {
                prompt: self.prompt(r),
                completion: self.completion(r),
                line: i + 1,
            })
            .collect()
    }
}

/// `tasklm train --task genqa|summarize|translate|code|reasoning`: SFT on prompt -> target.
pub fn train(
    data: &GenData,
    eval: Option<&GenData>,
    job: &TrainJob,
    notice: Notice,
) -> Result<TrainOutcome> {
    let train = data.sft_records(&data.read()?);
    let eval_records = match eval {
        Some(e) => Some(e.sft_records(&e.read()?)),
        None => None,
    };
    let meta = json!({
        "task": data.task.name(),
        "langs": data.langs,
    });
    let files = data.files().map(|train| crate::sft::DataFiles {
        train,
        // An eval file beside a training prefix is hashed as itself.
        eval: eval
            .map(|e| e.files().unwrap_or_else(|| vec![e.path.clone()]))
            .unwrap_or_default(),
    });
    crate::sft::train_records_with(
        job,
        (&train, eval_records.as_deref()),
        meta,
        files.as_ref(),
        notice,
    )
}
