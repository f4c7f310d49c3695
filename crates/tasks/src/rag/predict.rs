//! Answering questions with retrieval: the passages for each question (retrieved, the record's
//! own, or none), the prompt over them, greedy generation to a line end, and the passages used
//! as citations. `tasklm rag`, `eval --task rag` and the [`Predictor`] contract share it.

use super::prompt::{Passage, PromptTemplate};
use super::{
    ContextSource, RagOptions, Retriever, CLOSED_BOOK_TEMPLATE, DEFAULT_TEMPLATE, GENQA_TEMPLATE,
};
use crate::generative::GenTask;
use crate::{Predictor, Result, TaskError, TaskKind};
use serde::Serialize;
use serde_json::{json, Value};
use tasklm_generate::{generate, SamplingParams};
use tasklm_rag::Hit;

/// A passage an answer was generated from, numbered as in the prompt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Citation {
    /// Its number in the prompt ([1], [2], ...).
    pub n: usize,
    pub doc_id: String,
    pub title: String,
    /// Character span of the passage in its document.
    pub start: usize,
    pub end: usize,
    /// Retrieval score (fused, cosine or BM25 by mode); absent for a given
    /// context.
    pub score: Option<f32>,
    pub text: String,
}

/// An answer with its citations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    pub answer: String,
    pub citations: Vec<Citation>,
    /// Tokens of the prompt the generator read.
    pub prompt_tokens: usize,
}

/// A question with, for [`ContextSource::Gold`], its own paragraph and that paragraph's id.
#[derive(Clone, Debug, Default)]
pub struct Ask<'a> {
    pub question: &'a str,
    pub context: &'a str,
    pub doc_id: Option<&'a str>,
}

/// A generator, a retriever (unless answering closed-book or from given contexts) and a prompt.
pub struct RagPredictor {
    generator: tasklm_hub::LoadedDecoder,
    retriever: Option<Retriever>,
    template: PromptTemplate,
    context: ContextSource,
    pub sampling: SamplingParams,
}

impl RagPredictor {
    /// Loads the generator `model` and, for retrieved contexts, the index of `opts`; `template`
    /// replaces the default prompt (the genqa prompt for a `--task genqa` fine-tune, else
    /// [`DEFAULT_TEMPLATE`]; [`CLOSED_BOOK_TEMPLATE`] with `--context none`).
    pub fn load(
        model: &str,
        opts: &RagOptions,
        template: Option<&str>,
        progress: bool,
    ) -> Result<Self> {
        let retriever = match opts.context {
            ContextSource::Retrieved => {
                let index = opts.index.as_deref().ok_or_else(|| {
                    TaskError::Invalid(
                        "rag retrieves from an index: give --index DIR (tasklm index build), or \
                         --context none|gold"
                            .into(),
                    )
                })?;
                if opts.k == 0 {
                    return Err(TaskError::Invalid("-k must be at least 1".into()));
                }
                Some(Retriever::open(
                    index,
                    opts.mode,
                    opts.k,
                    opts.embedder.as_deref(),
                    progress,
                )?)
            }
            _ => None,
        };
        let generator = tasklm_hub::load_decoder(model, progress)?;
        let genqa_tuned = crate::common::tasklm_json::model_meta(&generator.source)
            .and_then(|m| m.get("task")?.as_str().map(|t| t == TaskKind::Genqa.name()))
            .unwrap_or(false);
        let closed = opts.context == ContextSource::None;
        let default = match (closed, genqa_tuned) {
            (true, _) => CLOSED_BOOK_TEMPLATE,
            (false, true) => GENQA_TEMPLATE,
            (false, false) => DEFAULT_TEMPLATE,
        };
        let sampling = SamplingParams {
            stop: GenTask::GenQa.stops(),
            ..SamplingParams::greedy(GenTask::GenQa.default_max_new_tokens())
        };
        Ok(Self {
            generator,
            retriever,
            template: PromptTemplate::new(template.unwrap_or(default), closed)?,
            context: opts.context,
            sampling,
        })
    }

    pub fn template(&self) -> &str {
        self.template.as_str()
    }

    /// The passages of each question, as citations (rank order); an empty question is an
    /// error.
    pub fn passages(&self, asks: &[Ask]) -> Result<Vec<Vec<Citation>>> {
        if let Some(a) = asks.iter().find(|a| a.question.trim().is_empty()) {
            return Err(TaskError::Invalid(format!(
                "an empty question: {:?}",
                a.question
            )));
        }
        Ok(match (&self.retriever, self.context) {
            (Some(r), ContextSource::Retrieved) => {
                let questions: Vec<&str> = asks.iter().map(|a| a.question).collect();
                r.retrieve(&questions)?.into_iter().map(citations).collect()
            }
            (_, ContextSource::Gold) => asks
                .iter()
                .map(|a| {
                    if a.context.trim().is_empty() {
                        return Err(TaskError::Invalid(format!(
                            "--context gold: the question {:?} has no context",
                            a.question
                        )));
                    }
                    Ok(vec![Citation {
                        n: 1,
                        doc_id: a.doc_id.unwrap_or_default().to_string(),
                        title: String::new(),
                        start: 0,
                        end: a.context.chars().count(),
                        score: None,
                        text: a.context.to_string(),
                    }])
                })
                .collect::<Result<_>>()?,
            _ => vec![Vec::new(); asks.len()],
        })
    }

    /// The prompt of `question` over `cited`.
    pub fn prompt(&self, question: &str, cited: &[Citation]) -> String {
        let passages: Vec<Passage> = cited
            .iter()
            .map(|c| Passage {
                title: &c.title,
                text: &c.text,
            })
            .collect();
        self.template.render(question, &passages)
    }

    /// Answers `asks` in batches of `batch` prompts; `on_batch` hears how many are done.
    pub fn answer(
        &self,
        asks: &[Ask],
        batch: usize,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<Vec<Answer>> {
        let cited = self.passages(asks)?;
        self.answer_from(asks, cited, batch, on_batch)
    }

    /// Answers `asks` over passages already found for them (`cited[i]` for `asks[i]`, from
    /// [`Self::passages`]).
    pub fn answer_from(
        &self,
        asks: &[Ask],
        cited: Vec<Vec<Citation>>,
        batch: usize,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<Vec<Answer>> {
        let tok = &self.generator.tokenizer;
        let ids = asks
            .iter()
            .zip(&cited)
            .map(|(a, c)| Ok(tok.encode(&self.prompt(a.question, c), true)?))
            .collect::<Result<Vec<Vec<u32>>>>()?;
        let mut out = Vec::with_capacity(asks.len());
        for (rows, cites) in ids.chunks(batch.max(1)).zip(cited.chunks(batch.max(1))) {
            let gens = generate(
                self.generator.model.as_ref(),
                tok,
                rows,
                &self.sampling,
                &mut |_, _| {},
            )?;
            for ((g, c), r) in gens.into_iter().zip(cites).zip(rows) {
                out.push(Answer {
                    answer: g.text.trim().to_string(),
                    citations: c.clone(),
                    prompt_tokens: r.len(),
                });
            }
            on_batch(rows.len());
        }
        Ok(out)
    }
}

fn citations(hits: Vec<Hit>) -> Vec<Citation> {
    hits.into_iter()
        .enumerate()
        .map(|(i, h)| Citation {
            n: i + 1,
            doc_id: h.doc_id,
            title: h.title,
            start: h.start,
            end: h.end,
            score: Some(h.score),
            text: h.text,
        })
        .collect()
}

impl Predictor for RagPredictor {
    fn task(&self) -> TaskKind {
        TaskKind::Rag
    }

    /// `{"question"[, "context"]}` -> `{"answer", "citations"}`.
    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records
            .iter()
            .map(|r| {
                let text = |k: &str| r.get(k).and_then(Value::as_str);
                let question = text("question").ok_or_else(|| {
                    TaskError::Invalid("expected a string field `question`".into())
                })?;
                let ask = Ask {
                    question,
                    context: text("context").unwrap_or(""),
                    doc_id: text("doc_id"),
                };
                let a = self.answer(&[ask], 1, &mut |_| {})?;
                let a = a
                    .into_iter()
                    .next()
                    .ok_or_else(|| TaskError::Invalid("no answer".into()))?;
                Ok(json!({"answer": a.answer, "citations": a.citations}))
            })
            .collect()
    }
}
