//! tasklm-tasks: each task family end to end (records, encoding, objective, metric, answers),
//! over the shared trainer, behind one contract: a [`TaskKind`] parsed once, and per family
//! the same three entry points ([`train`], [`evaluate`], [`predictor`]) that take one job type
//! each and return one [`Report`] shape or a [`Predictor`]. The CLI and the server are thin
//! layers over these functions.

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chat;
pub mod classify;
pub mod common;
mod error;
pub mod generative;
pub mod image_classify;
mod job;
mod kind;
pub mod ner;
mod predictor;
pub mod qa;
pub mod rag;
mod report;
pub mod retrieval;
pub mod seq2seq;
pub mod sft;
pub mod vqa;

pub use error::{Result, TaskError};
pub use job::{EvalJob, GenerationOptions, Notice, PredictJob, TaskOptions, TrainJob};
pub use kind::TaskKind;
pub use predictor::Predictor;
pub use report::Report;

use std::cell::RefCell;

/// What every task family provides: train, evaluate and answer records.
pub trait TaskFamily: Sync {
    /// Fine-tunes `job.model` on `job.data` and writes the trained directory to `job.out`.
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report>;
    /// The task's standard metric of `job.model` on `job.data`.
    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report>;
    /// Loads `job.model` to answer records of the task.
    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>>;
}

/// The family that owns `task`: the one place a task is matched to its code.
pub fn family(task: TaskKind) -> &'static dyn TaskFamily {
    match task {
        TaskKind::Sft => &sft::Sft,
        TaskKind::Chat => &chat::Chat,
        TaskKind::Classify | TaskKind::Nli => &classify::Classify,
        TaskKind::Ner => &ner::Ner,
        TaskKind::Qa => &qa::Qa,
        TaskKind::Genqa
        | TaskKind::Summarize
        | TaskKind::Translate
        | TaskKind::Code
        | TaskKind::Reasoning => &generative::Generative,
        TaskKind::Rag => &rag::Rag,
        TaskKind::Retrieval => &retrieval::Retrieval,
        TaskKind::ImageClassify => &image_classify::ImageClassify,
        TaskKind::Vqa => &vqa::Vqa,
    }
}

/// Refuses the options that `task` does not read, naming them.
fn check_train_options(task: TaskKind, o: &TaskOptions) -> Result<()> {
    let refuse = |m: &str| Err(TaskError::Invalid(m.into()));
    if o.template.is_some() && task != TaskKind::Chat {
        return refuse("--template applies to --task chat");
    }
    if o.pack && task != TaskKind::Sft {
        return refuse("--pack applies to --task sft");
    }
    if !task.is_label_task() && (o.prompt.template.is_some() || o.prompt.words.is_some()) {
        return refuse("--prompt-template and --label-words apply to --task classify and nli");
    }
    Ok(())
}

/// Runs `f` with a notice callback that prints through `notice` and keeps every message, and
/// puts the messages into the report.
fn collecting(notice: Notice, f: impl FnOnce(Notice) -> Result<Report>) -> Result<Report> {
    let kept = RefCell::new(Vec::new());
    let tee = |m: &str| {
        notice(m);
        kept.borrow_mut().push(m.to_string());
    };
    let mut r = f(&tee)?;
    r.notices = kept.into_inner();
    Ok(r)
}

/// `tasklm train`: fine-tunes for `job.task` and reports the run.
pub fn train(job: &TrainJob, notice: Notice) -> Result<Report> {
    check_train_options(job.task, &job.options)?;
    collecting(notice, |n| family(job.task).train(job, n))
}

/// `tasklm eval`: the task's standard metric.
pub fn evaluate(job: &EvalJob, notice: Notice) -> Result<Report> {
    if job.batch_size == 0 {
        return Err(TaskError::Invalid("--batch-size must be at least 1".into()));
    }
    let started = std::time::Instant::now();
    let r = collecting(notice, |n| family(job.task).evaluate(job, n))?;
    Ok(r.timing("eval_s", started.elapsed().as_secs_f64()))
}

/// `tasklm predict` and the server: a loaded model answering records of `job.task`.
pub fn predictor(job: &PredictJob) -> Result<Box<dyn Predictor>> {
    family(job.task).predictor(job)
}
