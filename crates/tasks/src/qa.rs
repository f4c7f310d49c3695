//! Extractive QA with an encoder: `[CLS] question [SEP] context-window [SEP]`, start and end
//! logits per token (`qa_outputs`), long contexts split into overlapping windows
//! (`--max-seq-len`, `--doc-stride`), answers mapped through character offsets. Windows
//! without the answer point at `[CLS]`. Saved as transformers' `BertForQuestionAnswering`.
//! Metric: SQuAD v1.1 exact match and F1.

use crate::common::encoder_input::{backbone_and_head, EncoderLora, HeadSpec};
use crate::common::encoder_runner::{
    fit_encoder, load_encoder_for, task_config, EncodedRows, EncoderTask,
};
use crate::common::lm_runner::TrainOutcome;
use crate::common::tasklm_json::saved_setting;
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskFamily, TaskKind,
    TrainJob,
};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tasklm_data::{read_squad, EncodeStats, QaRecord};
use tasklm_hub::encoder::BERT_PREFIX;
use tasklm_models::{Bert, EncoderInput, SpanHead};
use tasklm_nn::ops::per_token_cross_entropy;
use tasklm_text::TextTokenizer;
use tasklm_train::trainer::Metrics;

/// `--doc-stride` when neither the flag nor the trained model gives one.
pub const DEFAULT_DOC_STRIDE: usize = 128;

/// The extractive QA family: train, evaluate (SQuAD v1.1 EM/F1), predict answer spans.
pub struct Qa;

impl TaskFamily for Qa {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        Ok(train(job, notice)?.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        let (em, f1, n) = evaluate(job, notice)?;
        Ok(Report::new(job.task)
            .metric("exact_match", em)
            .metric("f1", f1)
            .count("n", n as u64))
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        let model = &job.model;
        let qa = load_qa(model, QaSettings::default(), job.progress)?;
        if !qa.trained_head {
            return Err(TaskError::Invalid(format!(
                "{model} has no trained span head (qa_outputs): train one with `tasklm train --task qa`"
            )));
        }
        Ok(Box::new(qa))
    }
}

/// Window settings.
#[derive(Clone, Copy, Debug)]
pub struct QaSettings {
    pub max_len: usize,
    /// Tokens shared by consecutive windows of a long context.
    pub doc_stride: usize,
    /// Longest answer in tokens.
    pub max_answer_tokens: usize,
    /// Start and end candidates kept per window.
    pub n_best: usize,
}

impl Default for QaSettings {
    fn default() -> Self {
        Self {
            max_len: 384,
            doc_stride: 128,
            max_answer_tokens: 30,
            n_best: 20,
        }
    }
}

/// Questions are cut to this many tokens (the context gets the rest of the window).
const MAX_QUESTION_TOKENS: usize = 64;
const INFER_BATCH: usize = 32;

/// One window of one question.
#[derive(Clone, Debug)]
pub struct Window {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    /// Sequence position of the window's first context token.
    pub ctx_pos: usize,
    /// Character offsets of the window's context tokens.
    pub offsets: Vec<(usize, usize)>,
}

/// An encoder with a span head.
pub struct EncoderQa {
    bert: Bert,
    head: SpanHead,
    params: Vec<(String, Var)>,
    lora: Option<EncoderLora>,
    tokenizer: TextTokenizer,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
    pub settings: QaSettings,
    pub trained_head: bool,
    ck_config: Value,
    ck_dir: PathBuf,
}

impl EncoderQa {
    /// Builds over `ck`, keeping its `qa_outputs` head when it has one (else a fresh one).
    pub fn new(
        ck: tasklm_hub::EncoderCheckpoint,
        settings: QaSettings,
        lora: Option<&tasklm_train::LoraTraining>,
    ) -> Result<Self> {
        let cfg = ck.config.clone();
        let keep = ck.tensors.contains_key("qa_outputs.weight");
        // transformers' BertForQuestionAnswering has no pooler: leave it out.
        let head = HeadSpec {
            name: "qa_outputs",
            outputs: 2,
            keep,
            pooler: false,
        };
        let built = backbone_and_head(ck.tensors, &cfg, &head, lora)?;
        let vb = VarBuilder::from_tensors(built.tensors, DType::F32, &Device::Cpu);
        let max_len = settings.max_len.min(cfg.max_position_embeddings);
        Ok(Self {
            bert: Bert::new(&cfg, vb.pp(BERT_PREFIX))?,
            head: SpanHead::new(cfg.hidden_size, vb)?,
            params: built.params,
            lora: built.lora,
            pad_id: ck.tokenizer.pad_id(),
            tokenizer: ck.tokenizer,
            cls_id: ck.cls_id,
            sep_id: ck.sep_id,
            settings: QaSettings {
                max_len,
                ..settings
            },
            trained_head: keep,
            ck_config: ck.config_json,
            ck_dir: ck.source.path().to_path_buf(),
        })
    }

    /// The windows of a question over its context.
    pub fn windows(&self, question: &str, context: &str) -> Result<Vec<Window>> {
        let mut q = self.tokenizer.encode(question, false)?;
        q.truncate(MAX_QUESTION_TOKENS);
        let (ctx, offsets) = self.tokenizer.encode_with_offsets(context, false)?;
        let budget = self.settings.max_len.saturating_sub(q.len() + 3);
        if budget == 0 {
            return Err(TaskError::Invalid(format!(
                "--max-seq-len {} leaves no room for the context",
                self.settings.max_len
            )));
        }
        let step = budget.saturating_sub(self.settings.doc_stride).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + budget).min(ctx.len());
            let mut ids = vec![self.cls_id];
            ids.extend(&q);
            ids.push(self.sep_id);
            let ctx_pos = ids.len();
            let mut types = vec![0u32; ids.len()];
            ids.extend(&ctx[start..end]);
            ids.push(self.sep_id);
            types.resize(ids.len(), 1);
            out.push(Window {
                ids,
                types,
                ctx_pos,
                offsets: offsets[start..end].to_vec(),
            });
            if end >= ctx.len() {
                break;
            }
            start += step;
        }
        Ok(out)
    }

    /// (start, end) logits, each (B, T), for windows.
    fn logits(&self, windows: &[&Window], train: bool) -> Result<(Tensor, Tensor)> {
        let rows: Vec<(Vec<u32>, Vec<u32>)> = windows
            .iter()
            .map(|w| (w.ids.clone(), w.types.clone()))
            .collect();
        let input = EncoderInput::right_padded(&rows, self.pad_id, &Device::Cpu)?;
        let hidden = self.bert.forward_t(&input, train)?; // (B, T, H)
        Ok(self.head.forward(&hidden)?)
    }

    /// The best answer of each question: (text, char start, char end, probability).
    pub fn answer(
        &self,
        questions: &[(String, String)],
    ) -> Result<Vec<(String, usize, usize, f64)>> {
        let mut out = Vec::with_capacity(questions.len());
        for chunk in questions.chunks(INFER_BATCH) {
            let per_q = chunk
                .iter()
                .map(|(q, c)| self.windows(q, c))
                .collect::<Result<Vec<_>>>()?;
            let flat: Vec<&Window> = per_q.iter().flatten().collect();
            let mut scored = Vec::with_capacity(flat.len());
            for part in flat.chunks(INFER_BATCH) {
                let (s, e) = self.logits(part, false)?;
                let s = s.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                let e = e.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                scored.extend(
                    part.iter()
                        .zip(s.into_iter().zip(e))
                        .map(|(w, (s, e))| self.best_span(w, &s, &e)),
                );
            }
            let mut it = scored.into_iter();
            for ((_, context), wins) in chunk.iter().zip(&per_q) {
                let best = it
                    .by_ref()
                    .take(wins.len())
                    .flatten()
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                out.push(match best {
                    Some((_, start, end, p)) => {
                        let text: String = context.chars().skip(start).take(end - start).collect();
                        (text, start, end, p)
                    }
                    None => (String::new(), 0, 0, 0.0),
                });
            }
        }
        Ok(out)
    }

    /// The window's best span among the top `n_best` starts and ends inside the context:
    /// (start + end logit, char start, char end, probability).
    fn best_span(&self, w: &Window, s: &[f32], e: &[f32]) -> Option<(f32, usize, usize, f64)> {
        let n = w.offsets.len();
        let top = |v: &[f32]| -> Vec<usize> {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by(|&a, &b| v[w.ctx_pos + b].total_cmp(&v[w.ctx_pos + a]));
            idx.truncate(self.settings.n_best);
            idx
        };
        let log_norm = |v: &[f32]| -> f32 {
            let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
        };
        let (zs, ze) = (log_norm(&s[..w.ids.len()]), log_norm(&e[..w.ids.len()]));
        let mut best: Option<(f32, usize, usize, f64)> = None;
        for &a in &top(s) {
            for &b in &top(e) {
                if b < a || b - a + 1 > self.settings.max_answer_tokens {
                    continue;
                }
                let score = s[w.ctx_pos + a] + e[w.ctx_pos + b];
                if best.is_none_or(|x| score > x.0) {
                    let p = f64::from((s[w.ctx_pos + a] - zs + e[w.ctx_pos + b] - ze).exp());
                    best = Some((score, w.offsets[a].0, w.offsets[b].1, p));
                }
            }
        }
        best
    }

    /// Token positions (in the window's sequence) of the answer at characters
    /// `[start, end)`, or (0, 0) (`[CLS]`) when the window does not hold all of it.
    pub fn label(w: &Window, start: usize, end: usize) -> (u32, u32) {
        let (Some(first), Some(last)) = (w.offsets.first(), w.offsets.last()) else {
            return (0, 0);
        };
        if first.0 > start || last.1 < end {
            return (0, 0);
        }
        let a = w.offsets.iter().rposition(|o| o.0 <= start).unwrap_or(0);
        let b = w
            .offsets
            .iter()
            .position(|o| o.1 >= end)
            .unwrap_or(w.offsets.len() - 1);
        ((w.ctx_pos + a) as u32, (w.ctx_pos + b.max(a)) as u32)
    }
}

/// SQuAD exact match and F1 (x100) of `qa` on `records`, with a progress bar.
pub fn evaluate_records(
    qa: &EncoderQa,
    records: &[QaRecord],
    progress: bool,
) -> Result<(f64, f64)> {
    let bar = crate::common::progress::eval_bar(records.len(), progress);
    let (mut preds, mut refs) = (Vec::new(), Vec::new());
    for chunk in records.chunks(INFER_BATCH) {
        let qs: Vec<(String, String)> = chunk
            .iter()
            .map(|r| (r.question.clone(), r.context.clone()))
            .collect();
        for (r, a) in chunk.iter().zip(qa.answer(&qs)?) {
            preds.push(a.0);
            refs.push(r.answers.iter().map(|x| x.0.clone()).collect::<Vec<_>>());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(tasklm_eval::squad_scores(&preds, &refs))
}

/// A training window with its answer's token positions (0, 0 without the answer).
pub struct Feature {
    window: Window,
    start: u32,
    end: u32,
}

impl EncoderTask for EncoderQa {
    type Row = Feature;
    type EvalRecord = QaRecord;

    fn lora(&self) -> Option<&crate::common::encoder_input::EncoderLora> {
        self.lora.as_ref()
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn row_len(row: &Feature) -> usize {
        row.window.ids.len()
    }

    fn loss(&self, picked: &[&Feature]) -> Result<(Tensor, usize)> {
        let windows: Vec<&Window> = picked.iter().map(|f| &f.window).collect();
        let (s, e) = self.logits(&windows, true)?;
        let n = picked.len();
        let starts = Tensor::from_vec(
            picked.iter().map(|f| f.start).collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )?;
        let ends = Tensor::from_vec(
            picked.iter().map(|f| f.end).collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )?;
        // transformers: (CE(start) + CE(end)) / 2, each averaged over the batch.
        let sum = ((per_token_cross_entropy(&s, &starts)?.sum_all()?
            + per_token_cross_entropy(&e, &ends)?.sum_all()?)?
            * 0.5)?;
        Ok((sum, n))
    }

    fn metrics(&self, records: &[QaRecord]) -> Result<Metrics> {
        let (em, f1) = evaluate_records(self, records, false)?;
        Ok(vec![("exact_match".into(), em), ("f1".into(), f1)])
    }

    fn config_json(&self) -> Value {
        task_config(&self.ck_config, "BertForQuestionAnswering", None)
    }

    fn tokenizer_dir(&self) -> &Path {
        &self.ck_dir
    }
}

fn load_qa(model: &str, settings: QaSettings, progress: bool) -> Result<EncoderQa> {
    let (source, ck) = load_encoder_for(model, TaskKind::Qa, progress)?;
    let saved = |k: &str| saved_setting(&source, k);
    let settings = QaSettings {
        max_len: saved("max_seq_len").unwrap_or(settings.max_len),
        doc_stride: saved("doc_stride").unwrap_or(settings.doc_stride),
        ..settings
    };
    EncoderQa::new(ck, settings, None)
}

/// `tasklm train --task qa`.
fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    let doc_stride = job.options.doc_stride.unwrap_or(DEFAULT_DOC_STRIDE);
    let records = read_squad(&job.data)?;
    let eval = match &job.eval {
        Some(p) => read_squad(p)?,
        None => Vec::new(),
    };
    let settings = QaSettings {
        max_len: job.max_seq_len.unwrap_or(QaSettings::default().max_len),
        doc_stride,
        ..QaSettings::default()
    };
    // The encoder check that eval and predict make (training once went without it).
    let (_, ck) = load_encoder_for(&job.model, TaskKind::Qa, job.progress)?;
    let lora = crate::common::lora_out::job_lora(job, tasklm_hub::ModelKind::Encoder);
    let qa = EncoderQa::new(ck, settings, lora.as_ref())?;
    if !qa.trained_head {
        notice("new span head (qa_outputs)");
    }
    let mut train = Vec::new();
    let mut without = 0usize;
    for r in &records {
        let Some((text, start)) = r.answers.first() else {
            continue;
        };
        for w in qa.windows(&r.question, &r.context)? {
            let (a, b) = EncoderQa::label(&w, *start, start + text.chars().count());
            without += usize::from(a == 0);
            train.push(Feature {
                window: w,
                start: a,
                end: b,
            });
        }
    }
    notice(&format!(
        "{}: {} questions -> {} windows ({} without the answer, pointing at [CLS])",
        job.data.display(),
        records.len(),
        train.len(),
        without
    ));
    let max_seq_len = qa.settings.max_len;
    let extra = json!({ "doc_stride": doc_stride });
    let data = EncodedRows {
        records: records.len(),
        kept: records.len(),
        rows: train,
        stats: EncodeStats::default(),
    };
    fit_encoder(job, qa, data, eval, (max_seq_len, extra))
}

/// `tasklm eval --task qa`: (exact match, F1, questions) on `data`.
fn evaluate(job: &EvalJob, notice: Notice) -> Result<(f64, f64, usize)> {
    let model = &job.model;
    let d = QaSettings::default();
    let settings = QaSettings {
        max_len: job.max_seq_len.unwrap_or(d.max_len),
        doc_stride: job.options.doc_stride.unwrap_or(d.doc_stride),
        ..d
    };
    let mut records = read_squad(&job.data)?;
    records.truncate(job.limit.unwrap_or(usize::MAX));
    let qa = load_qa(model, settings, job.progress)?;
    if !qa.trained_head {
        notice(&format!(
            "{model} has no trained span head: scoring an untrained head"
        ));
    }
    let (em, f1) = evaluate_records(&qa, &records, true)?;
    Ok((em, f1, records.len()))
}

impl Predictor for EncoderQa {
    fn task(&self) -> TaskKind {
        TaskKind::Qa
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records.iter().map(|r| self.predict_one(r)).collect()
    }
}

impl EncoderQa {
    /// `{"answer", "start", "end", "score"}` for a `{"question", "context"}` record.
    fn predict_one(&self, record: &Value) -> Result<Value> {
        let field = |k: &str| {
            record
                .get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| TaskError::Invalid(format!("expected a string field `{k}`")))
        };
        let (q, c) = (field("question")?, field("context")?);
        let (answer, start, end, score) = self.answer(&[(q, c)])?.pop().unwrap_or_default();
        Ok(json!({"answer": answer, "start": start, "end": end, "score": score}))
    }
}
