//! NER with an encoder: BIO token classification. Each word is tokenized on its own, the label
//! sits on its first sub-token (the rest are -100), and a word's prediction is read there.
//! Saved as transformers' `BertForTokenClassification` (`bert.*`, `classifier.*`, `id2label`).
//! Metric: entity-level precision/recall/F1 as `seqeval` computes them.

use crate::common::encoder_input::HeadedEncoder;
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
use serde_json::{json, Value};
use std::path::Path;
use tasklm_data::{read_ner, EncodeStats, NerRecord, IGNORE_INDEX};
use tasklm_eval::{entities, entity_scores, EntityScores};
use tasklm_models::EncoderInput;
use tasklm_nn::ops::masked_cross_entropy;
use tasklm_train::trainer::Metrics;

/// The NER family: train, evaluate (seqeval entity P/R/F1), predict entities with offsets.
pub struct Ner;

impl TaskFamily for Ner {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        Ok(train(job, notice)?.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        let (scores, n) = evaluate(job, notice)?;
        let mut r = Report::new(job.task);
        for (k, v) in metric_list(&scores) {
            r = r.metric(k, v);
        }
        Ok(r.count("n", n as u64))
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        Ok(Box::new(load_tagger(
            &job.model,
            None,
            None,
            job.progress,
            None,
        )?))
    }
}

/// Default `--max-seq-len` for NER.
pub const DEFAULT_MAX_LEN: usize = 128;
const INFER_BATCH: usize = 32;

/// A sentence encoded for the tagger: ids (`[CLS] ... [SEP]`) and, per token, the word whose
/// first sub-token it is.
#[derive(Clone, Debug)]
pub struct EncodedWords {
    pub ids: Vec<u32>,
    pub first_of_word: Vec<Option<usize>>,
    /// Words that fit (the rest were cut by `--max-seq-len`).
    pub words_kept: usize,
}

/// The tag set: `O` first, then the data's tags sorted.
pub fn tags_for(records: &[NerRecord]) -> Vec<String> {
    let mut t: Vec<String> = records.iter().flat_map(|r| r.tags.clone()).collect();
    t.retain(|x| x != "O");
    t.sort();
    t.dedup();
    t.insert(0, "O".into());
    t
}

/// An encoder with a token-classification head.
pub struct EncoderTagger(pub HeadedEncoder);

impl EncoderTagger {
    /// Encodes `words`: each on its own, `[CLS]` first and `[SEP]` last, stopping at the
    /// first word that does not fit in `max_len`.
    pub fn encode_words(&self, words: &[String]) -> Result<EncodedWords> {
        let e = &self.0.encoder;
        let mut ids = vec![e.cls_id];
        let mut first_of_word = vec![None];
        let mut words_kept = 0;
        for (w, word) in words.iter().enumerate() {
            let toks = e.tokenizer.encode(word, false)?;
            if ids.len() + toks.len() + 1 > e.max_len {
                break;
            }
            for (k, t) in toks.iter().enumerate() {
                ids.push(*t);
                first_of_word.push((k == 0).then_some(w));
            }
            words_kept += 1;
        }
        ids.push(e.sep_id);
        first_of_word.push(None);
        Ok(EncodedWords {
            ids,
            first_of_word,
            words_kept,
        })
    }

    /// Logits (B, T, tags) for encoded sentences.
    fn logits(&self, rows: &[&EncodedWords], train: bool) -> Result<Tensor> {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = rows
            .iter()
            .map(|r| (r.ids.clone(), vec![0; r.ids.len()]))
            .collect();
        let input = EncoderInput::right_padded(&pairs, self.0.pad_id, &Device::Cpu)?;
        let hidden = self.0.bert.forward_t(&input, train)?; // (B, T, H)
        Ok(self.0.head.forward_t(&hidden, train)?) // (B, T, C)
    }

    /// For each sentence, each word's (tag, probability); words past `--max-seq-len` get `O`
    /// with probability 0.
    pub fn tag(&self, sentences: &[Vec<String>]) -> Result<Vec<Vec<(String, f64)>>> {
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(INFER_BATCH) {
            let enc = chunk
                .iter()
                .map(|s| self.encode_words(s))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&EncodedWords> = enc.iter().collect();
            let probs = candle_nn::ops::softmax_last_dim(&self.logits(&refs, false)?)?
                .to_dtype(DType::F32)?
                .to_vec3::<f32>()?;
            for ((words, e), p) in chunk.iter().zip(&enc).zip(probs) {
                let mut tags = vec![("O".to_string(), 0.0); words.len()];
                for (pos, w) in e.first_of_word.iter().enumerate() {
                    if let Some(w) = w {
                        let (best, score) = p[pos]
                            .iter()
                            .copied()
                            .enumerate()
                            .max_by(|a, b| a.1.total_cmp(&b.1))
                            .unwrap_or((0, 0.0));
                        tags[*w] = (self.0.labels[best].clone(), f64::from(score));
                    }
                }
                out.push(tags);
            }
        }
        Ok(out)
    }

    /// Entities in raw `text`: `{"entity", "type", "start", "end", "score"}` with character
    /// offsets (`end` exclusive) and the mean probability of the entity's word tags.
    pub fn entities_in(&self, text: &str) -> Result<Vec<Value>> {
        let chars: Vec<char> = text.chars().collect();
        let spans = split_words(&chars);
        let words: Vec<String> = spans
            .iter()
            .map(|&(s, e)| chars[s..e].iter().collect())
            .collect();
        let tagged = self
            .tag(std::slice::from_ref(&words))?
            .pop()
            .unwrap_or_default();
        let tags: Vec<&str> = tagged.iter().map(|t| t.0.as_str()).collect();
        Ok(entities(&tags)
            .into_iter()
            .map(|(ty, a, b)| {
                let (start, end) = (spans[a].0, spans[b].1);
                let score = tagged[a..=b].iter().map(|t| t.1).sum::<f64>() / (b - a + 1) as f64;
                json!({
                    "entity": chars[start..end].iter().collect::<String>(),
                    "type": ty,
                    "start": start,
                    "end": end,
                    "score": score,
                })
            })
            .collect())
    }
}

/// Word spans (start, end) in characters: runs of letters and digits, and each other
/// non-space character alone (as BERT's basic tokenizer splits punctuation).
pub fn split_words(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            out.push((s, i));
        }
        if !c.is_whitespace() {
            out.push((i, i + 1));
        }
    }
    if let Some(s) = start {
        out.push((s, chars.len()));
    }
    out
}

/// Entity scores of `tagger` on `records`, with a progress bar.
pub fn evaluate_records(
    tagger: &EncoderTagger,
    records: &[NerRecord],
    progress: bool,
) -> Result<EntityScores> {
    let bar = crate::common::progress::eval_bar(records.len(), progress);
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    for chunk in records.chunks(INFER_BATCH) {
        let sentences: Vec<Vec<String>> = chunk.iter().map(|r| r.tokens.clone()).collect();
        for (r, tags) in chunk.iter().zip(tagger.tag(&sentences)?) {
            truth.push(r.tags.clone());
            pred.push(tags.into_iter().map(|t| t.0).collect::<Vec<_>>());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(entity_scores(&truth, &pred))
}

/// Metrics by their seqeval names: overall precision/recall/F1 and F1 per type.
pub fn metric_list(s: &EntityScores) -> Vec<(String, f64)> {
    let mut m = vec![
        ("precision".to_string(), s.overall.precision),
        ("recall".to_string(), s.overall.recall),
        ("f1".to_string(), s.overall.f1),
    ];
    for (ty, p) in &s.per_type {
        m.push((format!("f1_{ty}"), p.f1));
    }
    m
}

/// An encoded sentence with the tag index of each kept word.
pub struct Sentence {
    enc: EncodedWords,
    labels: Vec<u32>,
}

impl EncoderTask for EncoderTagger {
    type Row = Sentence;
    type EvalRecord = NerRecord;

    fn lora(&self) -> Option<&crate::common::encoder_input::EncoderLora> {
        self.0.lora.as_ref()
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.0.params()
    }

    fn row_len(row: &Sentence) -> usize {
        row.enc.ids.len()
    }

    fn loss(&self, picked: &[&Sentence]) -> Result<(Tensor, usize)> {
        let t = picked.iter().map(|s| s.enc.ids.len()).max().unwrap_or(0);
        let mut labels = vec![IGNORE_INDEX; picked.len() * t];
        for (b, s) in picked.iter().enumerate() {
            for (pos, w) in s.enc.first_of_word.iter().enumerate() {
                if let Some(w) = w {
                    labels[b * t + pos] = i64::from(s.labels[*w]);
                }
            }
        }
        let rows: Vec<&EncodedWords> = picked.iter().map(|s| &s.enc).collect();
        let logits = self.logits(&rows, true)?; // (B, T, C)
        let labels = Tensor::from_vec(labels, (picked.len(), t), &Device::Cpu)?;
        Ok(masked_cross_entropy(&logits, &labels)?)
    }

    fn metrics(&self, records: &[NerRecord]) -> Result<Metrics> {
        Ok(metric_list(&evaluate_records(self, records, false)?))
    }

    fn config_json(&self) -> Value {
        let h = &self.0;
        task_config(&h.ck_config, "BertForTokenClassification", Some(&h.labels))
    }

    fn tokenizer_dir(&self) -> &Path {
        &self.0.ck_dir
    }
}

fn load_tagger(
    model: &str,
    tags: Option<Vec<String>>,
    max_len: Option<usize>,
    progress: bool,
    lora: Option<&tasklm_train::LoraTraining>,
) -> Result<EncoderTagger> {
    let (source, ck) = load_encoder_for(model, TaskKind::Ner, progress)?;
    let trained_len = saved_setting(&source, "max_seq_len");
    let len = max_len.or(trained_len).unwrap_or(DEFAULT_MAX_LEN);
    Ok(EncoderTagger(HeadedEncoder::new(
        ck,
        tags,
        len,
        TaskKind::Ner,
        lora,
    )?))
}

/// `tasklm train --task ner`.
fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    let records = read_ner(&job.data)?;
    let eval = match &job.eval {
        Some(p) => read_ner(p)?,
        None => Vec::new(),
    };
    let lora = crate::common::lora_out::job_lora(job, tasklm_hub::ModelKind::Encoder);
    let tagger = load_tagger(
        &job.model,
        Some(tags_for(&records)),
        job.max_seq_len,
        job.progress,
        lora.as_ref(),
    )?;
    if !tagger.0.trained_head {
        notice(&format!(
            "new token-classification head for tags {:?}",
            tagger.0.labels
        ));
    }
    let mut stats = EncodeStats::default();
    let mut train = Vec::with_capacity(records.len());
    for r in &records {
        let enc = tagger.encode_words(&r.tokens)?;
        if enc.words_kept < r.tokens.len() {
            if job.truncation == tasklm_data::Truncation::Drop {
                stats.dropped += 1;
                continue;
            }
            stats.truncated += 1;
        }
        let labels = r.tags[..enc.words_kept]
            .iter()
            .map(|t| {
                tagger
                    .0
                    .labels
                    .iter()
                    .position(|l| l == t)
                    .map(|i| i as u32)
                    .ok_or_else(|| {
                        TaskError::Invalid(format!(
                            "{}:{}: unknown tag `{t}`",
                            job.data.display(),
                            r.line
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        train.push(Sentence { enc, labels });
    }
    if stats.truncated + stats.dropped > 0 {
        notice(&format!(
            "{}: {} sentences are longer than --max-seq-len {}: {} cut, {} dropped",
            job.data.display(),
            stats.truncated + stats.dropped,
            tagger.0.encoder.max_len,
            stats.truncated,
            stats.dropped
        ));
    }
    let max_seq_len = tagger.0.encoder.max_len;
    let extra = json!({ "labels": tagger.0.labels });
    let data = EncodedRows {
        records: records.len(),
        kept: train.len(),
        rows: train,
        stats,
    };
    fit_encoder(job, tagger, data, eval, (max_seq_len, extra))
}

/// `tasklm eval --task ner`: entity scores on `data` (first `limit` sentences). A model without
/// a trained head is scored with a fresh one, and `notice` says so.
fn evaluate(job: &EvalJob, notice: Notice) -> Result<(EntityScores, usize)> {
    let (model, max_len) = (&job.model, job.max_seq_len);
    let mut records = read_ner(&job.data)?;
    records.truncate(job.limit.unwrap_or(usize::MAX));
    let tagger = match load_tagger(model, None, max_len, job.progress, None) {
        Ok(t) => t,
        Err(TaskError::File { .. }) => {
            notice(&format!(
                "{model} has no trained token-classification head: scoring an untrained head"
            ));
            load_tagger(model, Some(tags_for(&records)), max_len, job.progress, None)?
        }
        Err(e) => return Err(e),
    };
    Ok((evaluate_records(&tagger, &records, true)?, records.len()))
}

impl Predictor for EncoderTagger {
    fn task(&self) -> TaskKind {
        TaskKind::Ner
    }

    /// `{"entities": [...]}` for each `{"text"}` record.
    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records
            .iter()
            .map(|record| {
                let text = record
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TaskError::Invalid("expected a string field `text`".into()))?;
                Ok(json!({"entities": self.entities_in(text)?}))
            })
            .collect()
    }
}
