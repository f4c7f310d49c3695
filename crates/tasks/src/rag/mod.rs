//! Retrieval-augmented generation (family 11): retrieve passages for a question from a
//! `tasklm index`, put them into the prompt, and generate an answer grounded on them, with the
//! passages used as citations. `eval --task rag` scores SQuAD EM/F1 beside retrieval recall@k
//! (the gold paragraph among the passages), and the same generator closed-book (`--context
//! none`) or on the gold paragraph (`--context gold`, the upper bound) for comparison.
//! Nothing is trained here: the retriever trains with `--task retrieval`, the generator with
//! `--task genqa`.

mod eval;
mod predict;
mod prompt;
mod questions;
mod retrieve;

pub use predict::{Answer, Ask, Citation, RagPredictor};
pub use prompt::{PromptTemplate, CLOSED_BOOK_TEMPLATE, DEFAULT_TEMPLATE, GENQA_TEMPLATE};
pub use questions::{read_questions, Question};
pub use retrieve::Retriever;

use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskFamily, TrainJob,
};

/// Passages put into the prompt by default.
pub const DEFAULT_PASSAGES: usize = 3;

/// Where the prompt's passages come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContextSource {
    /// The index's top `k` for the question.
    #[default]
    Retrieved,
    /// None: the generator answers closed-book.
    None,
    /// The record's own paragraph (SQuAD `context`): the upper bound of retrieval.
    Gold,
}

impl std::str::FromStr for ContextSource {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "retrieved" => Ok(Self::Retrieved),
            "none" => Ok(Self::None),
            "gold" => Ok(Self::Gold),
            other => Err(TaskError::Invalid(format!(
                "--context `{other}`: expected retrieved, none or gold"
            ))),
        }
    }
}

/// How `rag` retrieves and prompts.
#[derive(Clone, Debug)]
pub struct RagOptions {
    /// The index (`tasklm index build`): a directory, or a `postgres://` URL.
    pub index: Option<String>,
    /// Passages in the prompt.
    pub k: usize,
    pub mode: tasklm_rag::Mode,
    pub context: ContextSource,
    /// The embedding model [default: the one the index was built with].
    pub embedder: Option<String>,
}

impl Default for RagOptions {
    fn default() -> Self {
        Self {
            index: None,
            k: DEFAULT_PASSAGES,
            mode: tasklm_rag::Mode::Hybrid,
            context: ContextSource::Retrieved,
            embedder: None,
        }
    }
}

/// The rag family: evaluation and answering; training is refused with where to go instead.
pub struct Rag;

impl TaskFamily for Rag {
    fn train(&self, _job: &TrainJob, _notice: Notice) -> Result<Report> {
        Err(TaskError::Invalid(
            "rag is not trained as one model: train the retriever with --task retrieval and the \
             generator with --task genqa (context + question), then use both with `tasklm rag`"
                .into(),
        ))
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        eval::evaluate(job, notice)
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        let mut p = RagPredictor::load(
            &job.model,
            &job.options.rag,
            job.options.prompt.template.as_deref(),
            job.progress,
        )?;
        if let Some(n) = job.options.max_new_tokens {
            p.sampling.max_new_tokens = n;
        }
        Ok(Box::new(p))
    }
}
