//! `--task retrieval`: a sentence encoder (all-MiniLM-L6-v2 or any BERT-family model) trained
//! for search with in-batch negatives, as sentence-transformers trains one: pairs
//! `{"query", "positive"[, "negative"]}` (or SQuAD JSON: each question and its paragraph),
//! batches that never repeat a text (`NoDuplicatesBatchSampler`), embeddings pooled and
//! normalised as the model's `modules.json` says, and the multiple-negatives ranking loss
//! (cosine similarity times 20, cross-entropy of each query over every positive and hard
//! negative of its batch). The trained model is a sentence-transformers directory that
//! `tasklm embed`, `tasklm index` and `SentenceTransformer(DIR)` load. `eval` reports
//! recall@1/5/20 and MRR@10 of each query's positive among all the data's positives;
//! `predict` answers `{"text"}` with `{"embedding"}`.

pub mod batches;
pub mod eval;
pub mod model;
pub mod objective;
pub mod pairs;
pub mod st_dir;

use crate::common::encoder_runner::load_encoder_for;
use crate::common::lm_runner::{train_options, EncodedStats, TrainOutcome};
use crate::common::provenance::data_section;
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskKind, TrainJob,
};
use model::Retriever;
use objective::{EncodedPair, RetrievalObjective};
use pairs::{read_pairs, Pair};
use serde_json::{json, Value};
use tasklm_data::{EncodeStats, Truncation};

/// The retrieval family.
pub struct Retrieval;

impl crate::TaskFamily for Retrieval {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        Ok(train(job, notice)?.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, _notice: Notice) -> Result<Report> {
        let mut pairs = read_pairs(&job.data)?;
        pairs.truncate(job.limit.unwrap_or(usize::MAX));
        let (_, ck) = load_encoder_for(&job.model, TaskKind::Retrieval, job.progress)?;
        let model = Retriever::new(ck, job.max_seq_len)?;
        let mut r = Report::new(job.task);
        for (k, v) in eval::ranking_metrics(&model, &pairs)? {
            r = r.metric(k, v);
        }
        Ok(r.count("n", pairs.len() as u64))
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        let (_, ck) = load_encoder_for(&job.model, TaskKind::Retrieval, job.progress)?;
        Ok(Box::new(Retriever::new(ck, None)?))
    }
}

impl Predictor for Retriever {
    fn task(&self) -> TaskKind {
        TaskKind::Retrieval
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records
            .iter()
            .map(|r| {
                let text = r
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TaskError::Invalid("expected a string field `text`".into()))?;
                let v = eval::embed_all(self, &[text])?.to_vec2::<f32>()?;
                Ok(json!({"embedding": v.into_iter().next().unwrap_or_default()}))
            })
            .collect()
    }
}

/// Encodes `pairs` for `model`: pairs with a text longer than the model's limit are cut (its
/// end, as sentence-transformers does) or, with `Truncation::Drop`, left out.
fn encode_pairs(
    model: &Retriever,
    pairs: Vec<Pair>,
    truncation: Truncation,
) -> Result<(Vec<Pair>, Vec<EncodedPair>, EncodeStats)> {
    let mut stats = EncodeStats::default();
    let (mut kept, mut rows) = (
        Vec::with_capacity(pairs.len()),
        Vec::with_capacity(pairs.len()),
    );
    for p in pairs {
        let (query, cq) = model.encode(&p.query)?;
        let (positive, cp) = model.encode(&p.positive)?;
        let (negative, cn) = match &p.negative {
            Some(n) => {
                let (ids, cut) = model.encode(n)?;
                (Some(ids), cut)
            }
            None => (None, false),
        };
        if cq || cp || cn {
            if truncation == Truncation::Drop {
                stats.dropped += 1;
                continue;
            }
            stats.truncated += 1;
        }
        kept.push(p);
        rows.push(EncodedPair {
            query,
            positive,
            negative,
        });
    }
    Ok((kept, rows, stats))
}

/// `tasklm train --task retrieval`.
pub fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    if job.options.lora.is_some() {
        return Err(TaskError::Invalid(
            "--lora does not apply to --task retrieval, which trains every weight".into(),
        ));
    }
    let pairs = read_pairs(&job.data)?;
    let eval = match &job.eval {
        Some(p) => read_pairs(p)?,
        None => Vec::new(),
    };
    let (_, ck) = load_encoder_for(&job.model, TaskKind::Retrieval, job.progress)?;
    let model = Retriever::new(ck, job.max_seq_len)?;
    let records = pairs.len();
    let (kept, rows, stats) = encode_pairs(&model, pairs, job.truncation)?;
    if stats.truncated + stats.dropped > 0 {
        notice(&format!(
            "{}: {} of {records} pairs have a text longer than {} tokens: {} cut at the end, {} dropped",
            job.data.display(),
            stats.truncated + stats.dropped,
            model.max_len,
            stats.truncated,
            stats.dropped
        ));
    }
    if rows.is_empty() {
        return Err(TaskError::File {
            path: job.data.clone(),
            msg: format!(
                "all {records} pairs are longer than --max-seq-len {}",
                model.max_len
            ),
        });
    }
    let max_seq_len = model.max_len;
    let provenance = json!({
        "task": job.task.name(),
        "base_model": job.model,
        "max_seq_len": max_seq_len,
        "data": data_section(
            (&job.data, records),
            job.eval.as_deref().map(|e| (e, eval.len())),
        )?,
        "train_args": job.args,
        "loss": {
            "name": "MultipleNegativesRankingLoss",
            "similarity": "cosine",
            "scale": tasklm_train::MNRL_SCALE,
            "hard_negatives": kept.iter().any(|p| p.negative.is_some()),
        },
        "batch_sampler": "no_duplicates",
    });
    let n = rows.len();
    let obj = RetrievalObjective {
        model,
        pairs: kept,
        rows,
        eval,
        scale: tasklm_train::MNRL_SCALE,
        provenance,
    };
    let summary = tasklm_train::train(&obj, &job.args, train_options(job))?;
    Ok(TrainOutcome {
        summary,
        train: EncodedStats {
            records,
            kept: n,
            stats,
        },
        max_seq_len,
        sequences: n,
    })
}
