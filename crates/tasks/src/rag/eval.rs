//! `eval --task rag`: every question answered from the index (or closed-book, or from its gold
//! paragraph), scored with SQuAD EM/F1, with retrieval recall@k (the gold paragraph among the
//! passages in the prompt) beside it.

use super::predict::{Answer, Ask, RagPredictor};
use super::{read_questions, ContextSource, Question};
use crate::{EvalJob, Notice, Report, Result, TaskError, TaskKind};
use serde_json::json;
use tasklm_eval::squad::{best_over, exact_match, f1};

pub fn evaluate(job: &EvalJob, notice: Notice) -> Result<Report> {
    let opts = &job.options.rag;
    let mut questions = read_questions(&job.data)?;
    questions.truncate(job.limit.unwrap_or(usize::MAX));
    if questions.is_empty() {
        return Err(TaskError::File {
            path: job.data.clone(),
            msg: "no questions to evaluate".into(),
        });
    }
    let mut p = RagPredictor::load(
        &job.model,
        opts,
        job.options.prompt.template.as_deref(),
        job.progress,
    )?;
    if let Some(n) = job.generation.max_new_tokens {
        p.sampling.max_new_tokens = n;
    }
    let asks: Vec<Ask> = questions
        .iter()
        .map(|q| Ask {
            question: &q.question,
            context: &q.context,
            doc_id: q.doc_id.as_deref(),
        })
        .collect();
    let bar = crate::common::progress::eval_bar(asks.len(), job.progress);
    let answers = p.answer(&asks, job.batch_size, &mut |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    if let Some(path) = &job.generation.predictions {
        write_predictions(path, &questions, &answers)?;
    }
    let preds: Vec<String> = answers.iter().map(|a| a.answer.clone()).collect();
    let refs: Vec<Vec<String>> = questions.iter().map(|q| q.answers.clone()).collect();
    let (em, f1) = tasklm_eval::squad_scores(&preds, &refs);
    let mut r = Report::new(TaskKind::Rag)
        .metric("exact_match", em)
        .metric("f1", f1);
    if opts.context == ContextSource::Retrieved {
        match recall(&questions, &answers) {
            Some(recall) => r = r.metric(format!("recall@{}", opts.k), recall),
            None => notice("recall@k is not reported: the questions name no gold `doc_id`"),
        }
    }
    let tokens: usize = answers.iter().map(|a| a.prompt_tokens).sum();
    Ok(
        r.metric("context", format!("{:?}", opts.context).to_lowercase())
            .metric("mean_prompt_tokens", tokens as f64 / answers.len() as f64)
            .count("n", answers.len() as u64),
    )
}

/// The share of questions whose gold paragraph is among their passages (None when no
/// question names one).
fn recall(questions: &[Question], answers: &[Answer]) -> Option<f64> {
    let scored: Vec<bool> = questions
        .iter()
        .zip(answers)
        .filter_map(|(q, a)| {
            let gold = q.doc_id.as_deref()?;
            Some(a.citations.iter().any(|c| c.doc_id == gold))
        })
        .collect();
    (!scored.is_empty()).then(|| scored.iter().filter(|&&h| h).count() as f64 / scored.len() as f64)
}

/// One JSON line per question: its answer, references, F1 and the passages it was given.
fn write_predictions(path: &std::path::Path, qs: &[Question], answers: &[Answer]) -> Result<()> {
    let lines = qs.iter().zip(answers).map(|(q, a)| {
        json!({
            "id": q.id,
            "question": q.question,
            "prediction": a.answer,
            "references": q.answers,
            "exact_match": 100.0 * best_over(exact_match, &a.answer, &q.answers),
            "f1": 100.0 * best_over(f1, &a.answer, &q.answers),
            "gold_doc_id": q.doc_id,
            "passages": a.citations.iter().map(|c| &c.doc_id).collect::<Vec<_>>(),
        })
    });
    crate::common::predictions::write_predictions(path, lines)
}
