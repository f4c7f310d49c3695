//! Scoring labels with a decoder: zero-shot, few-shot (`--shots K` examples in the prompt) and
//! contextually calibrated (`--calibrate`: each label's log-probability for a content-free
//! input is subtracted, Zhao et al. 2021), evaluated with accuracy and macro-F1.

use super::prompt::{LabelExample, LabelPrompt};
use crate::common::lm_runner::TrainOutcome;
use crate::common::progress::eval_bar;
use crate::common::tasklm_json::model_meta;
use crate::{EvalJob, Notice, Result, TaskError, TaskKind, TrainJob};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;
use tasklm_generate::{label_logprobs, label_logprobs_batch, label_probabilities, LabelNorm};
use tasklm_models::CausalLm;
use tasklm_text::{ChatMessage, ChatTemplate, TextTokenizer};

/// How labels are scored.
#[derive(Clone, Debug, Default)]
pub struct ScoreOptions {
    /// Subtract each label's log-probability for a content-free input ("N/A").
    pub calibrate: bool,
    pub norm: LabelNorm,
}

/// Reads `path` as the records of `task` (`classify` or `nli`); returns the examples and the
/// rows skipped for an unknown label.
pub fn read_examples(task: TaskKind, path: &Path) -> Result<(Vec<LabelExample>, usize)> {
    match task {
        TaskKind::Classify => {
            let r = tasklm_data::read_classify(path)?;
            Ok((r.iter().map(LabelExample::from).collect(), 0))
        }
        TaskKind::Nli => {
            let (r, skipped) = tasklm_data::read_nli(path)?;
            Ok((r.iter().map(LabelExample::from).collect(), skipped))
        }
        other => Err(TaskError::Invalid(format!("`{other}` is not a label task"))),
    }
}

/// `k` examples drawn with `seed`; returns them and the rest.
pub fn draw_shots(
    examples: &[LabelExample],
    k: usize,
    seed: u64,
) -> (Vec<LabelExample>, Vec<LabelExample>) {
    let mut idx: Vec<usize> = (0..examples.len()).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let chosen: std::collections::HashSet<usize> = idx.into_iter().take(k).collect();
    let (mut shots, mut rest) = (Vec::new(), Vec::new());
    for (i, e) in examples.iter().enumerate() {
        if chosen.contains(&i) {
            shots.push(e.clone());
        } else {
            rest.push(e.clone());
        }
    }
    (shots, rest)
}

/// A model, its tokenizer and a label prompt, ready to score records.
pub struct LabelScorer<'a> {
    model: &'a dyn CausalLm,
    tok: &'a TextTokenizer,
    prompt: &'a LabelPrompt,
    chat: Option<&'a ChatTemplate>,
    prefix: String,
    word_ids: Vec<Vec<u32>>,
    calibration: Option<Vec<f64>>,
    norm: LabelNorm,
}

impl<'a> LabelScorer<'a> {
    /// `shots` go before each prompt, each followed by its label word; with `chat`, the prompt
    /// is the user's turn and the label word starts the assistant's.
    pub fn new(
        model: &'a dyn CausalLm,
        tok: &'a TextTokenizer,
        prompt: &'a LabelPrompt,
        shots: &[LabelExample],
        chat: Option<&'a ChatTemplate>,
        opts: &ScoreOptions,
    ) -> Result<Self> {
        let word = |i: usize| -> &str {
            let w = prompt.words[i].as_str();
            if chat.is_some() {
                w.trim_start()
            } else {
                w
            }
        };
        let mut prefix = String::new();
        for s in shots {
            let label = s.label.as_deref().unwrap_or_default();
            let i = prompt.label_index(label).ok_or_else(|| {
                TaskError::Invalid(format!("few-shot example with unknown label `{label}`"))
            })?;
            prefix.push_str(&prompt.render(s)?);
            prefix.push_str(prompt.words[i].as_str());
            prefix.push_str("\n\n");
        }
        let word_ids = (0..prompt.words.len())
            .map(|i| Ok(tok.encode(word(i), false)?))
            .collect::<Result<Vec<_>>>()?;
        let mut scorer = Self {
            model,
            tok,
            prompt,
            chat,
            prefix,
            word_ids,
            calibration: None,
            norm: opts.norm,
        };
        if opts.calibrate {
            let content_free = LabelExample {
                fields: ["text", "premise", "hypothesis"]
                    .iter()
                    .map(|f| (f.to_string(), "N/A".to_string()))
                    .collect(),
                label: None,
            };
            scorer.calibration = Some(scorer.logprobs(&content_free)?);
        }
        Ok(scorer)
    }

    fn prompt_ids(&self, ex: &LabelExample) -> Result<Vec<u32>> {
        let text = format!("{}{}", self.prefix, self.prompt.render(ex)?);
        Ok(match self.chat {
            Some(t) => {
                let rendered = t.render(&[ChatMessage::new("user", &text)], true)?;
                self.tok.encode(&rendered, false)?
            }
            None => self.tok.encode(&text, true)?,
        })
    }

    fn logprobs(&self, ex: &LabelExample) -> Result<Vec<f64>> {
        let ids = self.prompt_ids(ex)?;
        Ok(label_logprobs(self.model, &ids, &self.word_ids, self.norm)?)
    }

    /// The content-free log-probabilities subtracted by calibration, when on.
    pub fn calibration(&self) -> Option<&[f64]> {
        self.calibration.as_deref()
    }

    /// Uses `c` as the calibration (computed once by another scorer of the same prompt).
    pub fn set_calibration(&mut self, c: Option<Vec<f64>>) {
        self.calibration = c;
    }

    /// The probability of each label for `ex` (after calibration, when on).
    pub fn probabilities(&self, ex: &LabelExample) -> Result<Vec<f64>> {
        let mut lp = self.logprobs(ex)?;
        if let Some(c) = &self.calibration {
            for (x, c) in lp.iter_mut().zip(c) {
                *x -= c;
            }
        }
        Ok(label_probabilities(&lp))
    }

    /// [`LabelScorer::probabilities`] for several examples in one batched pass.
    pub fn probabilities_batch(&self, exs: &[LabelExample]) -> Result<Vec<Vec<f64>>> {
        let prompts = exs
            .iter()
            .map(|e| self.prompt_ids(e))
            .collect::<Result<Vec<_>>>()?;
        let rows = label_logprobs_batch(
            self.model,
            &prompts,
            &self.word_ids,
            self.norm,
            self.tok.pad_id(),
        )?;
        Ok(rows
            .into_iter()
            .map(|mut lp| {
                if let Some(c) = &self.calibration {
                    for (x, c) in lp.iter_mut().zip(c) {
                        *x -= c;
                    }
                }
                label_probabilities(&lp)
            })
            .collect())
    }

    /// The most probable label and its probability.
    pub fn predict(&self, ex: &LabelExample) -> Result<(&'a str, f64)> {
        let p = self.probabilities(ex)?;
        let (i, &s) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .ok_or_else(|| TaskError::Invalid("no labels".into()))?;
        Ok((self.prompt.labels[i].as_str(), s))
    }
}

/// Accuracy and macro-F1 of a scorer over labelled examples.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelEval {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub n: usize,
}

impl LabelEval {
    /// Accuracy and macro-F1 of predicted labels against the true ones.
    pub fn of(truth: &[String], pred: &[String]) -> Self {
        Self {
            accuracy: tasklm_eval::accuracy(truth, pred),
            macro_f1: tasklm_eval::macro_f1(truth, pred),
            n: truth.len(),
        }
    }
}

/// Prompts scored together in evaluation (left-padded into one batch).
const EVAL_BATCH: usize = 16;

/// Scores every example (with a progress bar when `progress`).
pub fn evaluate_examples(
    scorer: &LabelScorer,
    examples: &[LabelExample],
    progress: bool,
) -> Result<LabelEval> {
    let bar = eval_bar(examples.len(), progress);
    let labelled: Vec<&LabelExample> = examples.iter().filter(|e| e.label.is_some()).collect();
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    for chunk in labelled.chunks(EVAL_BATCH) {
        let exs: Vec<LabelExample> = chunk.iter().map(|e| (*e).clone()).collect();
        for (ex, p) in exs.iter().zip(scorer.probabilities_batch(&exs)?) {
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            truth.push(ex.label.clone().unwrap_or_default());
            pred.push(scorer.prompt.labels[best].clone());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(LabelEval::of(&truth, &pred))
}

/// Prompt settings given on the command line.
#[derive(Clone, Debug, Default)]
pub struct PromptOverrides {
    pub template: Option<String>,
    pub words: Option<String>,
}

/// The label prompt for `task`: the one a tasklm model was trained with (from its
/// `tasklm.json`), else the defaults over the labels of `examples`; overrides applied.
pub fn label_prompt_for(
    task: TaskKind,
    meta: Option<&serde_json::Value>,
    examples: &[LabelExample],
    overrides: &PromptOverrides,
) -> Result<LabelPrompt> {
    let saved = meta
        .filter(|m| m.get("task").and_then(|t| t.as_str()) == Some(task.name()))
        .and_then(|m| m.get("label_prompt"))
        .and_then(|p| serde_json::from_value::<LabelPrompt>(p.clone()).ok());
    let mut p = match saved {
        Some(p) => p,
        None => {
            let seen: Vec<String> = examples.iter().filter_map(|e| e.label.clone()).collect();
            LabelPrompt::defaults(task, &seen)?
        }
    };
    if let Some(t) = &overrides.template {
        p = p.with_template(t)?;
    }
    if let Some(w) = &overrides.words {
        p = p.with_words(w)?;
    }
    Ok(p)
}

/// `tasklm train --task classify|nli` with a decoder: SFT on `prompt -> label word` (the loss on
/// the label's tokens and EOS), the label prompt saved in `tasklm.json`.
pub fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    let (task, overrides) = (job.task, &job.options.prompt);
    let (train_ex, skipped) = read_examples(task, &job.data)?;
    if skipped > 0 {
        notice(&format!(
            "{}: {skipped} rows without an NLI label skipped",
            job.data.display()
        ));
    }
    let eval_ex = match &job.eval {
        Some(p) => Some(read_examples(task, p)?.0),
        None => None,
    };
    let prompt = label_prompt_for(task, None, &train_ex, overrides)?;
    let to_records = |exs: &[LabelExample]| -> Result<Vec<tasklm_data::SftRecord>> {
        exs.iter()
            .enumerate()
            .map(|(i, e)| {
                let label = e.label.as_deref().unwrap_or_default();
                let k = prompt.label_index(label).ok_or_else(|| {
                    TaskError::Invalid(format!(
                        "record {}: label `{label}` is not one of {:?}",
                        i + 1,
                        prompt.labels
                    ))
                })?;
                Ok(tasklm_data::SftRecord {
                    prompt: prompt.render(e)?,
                    completion: prompt.words[k].clone(),
                    line: i + 1,
                })
            })
            .collect()
    };
    let train_records = to_records(&train_ex)?;
    let eval_records = eval_ex.as_deref().map(to_records).transpose()?;
    let meta = serde_json::json!({"task": task, "label_prompt": prompt});
    crate::sft::train_records_with(
        job,
        (&train_records, eval_records.as_deref()),
        meta,
        None,
        notice,
    )
}

/// A decoder, its `tasklm.json` (when a tasklm directory) and, with `chat`, its chat template.
type LoadedForLabels = (
    tasklm_hub::LoadedDecoder,
    Option<serde_json::Value>,
    Option<ChatTemplate>,
);

fn load_for_labels(model: &str, chat: bool, progress: bool) -> Result<LoadedForLabels> {
    let source = tasklm_hub::resolve(model, progress)?;
    let meta = model_meta(&source);
    let mut loaded =
        tasklm_hub::load_checkpoint(&source, candle_core::DType::F32, &candle_core::Device::Cpu)?
            .into_decoder()?;
    let template = if chat {
        Some(crate::chat::resolve_template(
            &mut loaded.tokenizer,
            None,
            meta.as_ref(),
        )?)
    } else {
        None
    };
    Ok((loaded, meta, template))
}

/// Loads the model and data of `job` and scores them.
pub fn evaluate(job: &EvalJob, notice: Notice) -> Result<LabelEval> {
    let (mut examples, skipped) = read_examples(job.task, &job.data)?;
    if skipped > 0 {
        notice(&format!(
            "{}: {skipped} rows without an NLI label skipped",
            job.data.display()
        ));
    }
    let shots = if job.shots == 0 {
        Vec::new()
    } else if let Some(from) = &job.shots_from {
        draw_shots(&read_examples(job.task, from)?.0, job.shots, job.seed).0
    } else {
        let (shots, rest) = draw_shots(&examples, job.shots, job.seed);
        examples = rest;
        shots
    };
    if let Some(n) = job.limit {
        examples.truncate(n);
    }
    let (loaded, meta, chat) = load_for_labels(&job.model, job.options.chat, job.progress)?;
    let prompt = label_prompt_for(job.task, meta.as_ref(), &examples, &job.options.prompt)?;
    let scorer = LabelScorer::new(
        loaded.model.as_ref(),
        &loaded.tokenizer,
        &prompt,
        &shots,
        chat.as_ref(),
        &job.options.score,
    )?;
    evaluate_examples(&scorer, &examples, job.progress)
}

/// The texts of a `predict` record: `text` (classify), or `premise` and `hypothesis` (nli).
pub fn record_fields(task: TaskKind, record: &serde_json::Value) -> Result<Vec<(String, String)>> {
    let names: &[&str] = if task == TaskKind::Nli {
        &["premise", "hypothesis"]
    } else {
        &["text"]
    };
    names
        .iter()
        .map(|n| {
            record
                .get(*n)
                .and_then(|v| v.as_str())
                .map(|v| (n.to_string(), v.to_string()))
                .ok_or_else(|| TaskError::Invalid(format!("expected a string field `{n}`")))
        })
        .collect()
}

/// A loaded decoder classifier answering one record at a time (`tasklm predict`).
pub struct LabelPredictor {
    loaded: tasklm_hub::LoadedDecoder,
    chat: Option<ChatTemplate>,
    prompt: LabelPrompt,
    norm: LabelNorm,
    calibration: Option<Vec<f64>>,
}

impl LabelPredictor {
    /// Loads `model` for `task`; without a saved label prompt the labels come from
    /// `overrides` and the task's defaults (NLI's three, or SST-2's 0/1 for classify).
    pub fn load(
        task: TaskKind,
        model: &str,
        overrides: &PromptOverrides,
        chat: bool,
        score: ScoreOptions,
    ) -> Result<Self> {
        let (loaded, meta, chat) = load_for_labels(model, chat, true)?;
        let binary = [
            LabelExample {
                fields: Vec::new(),
                label: Some("0".into()),
            },
            LabelExample {
                fields: Vec::new(),
                label: Some("1".into()),
            },
        ];
        let prompt = label_prompt_for(task, meta.as_ref(), &binary, overrides)?;
        let calibration = LabelScorer::new(
            loaded.model.as_ref(),
            &loaded.tokenizer,
            &prompt,
            &[],
            chat.as_ref(),
            &score,
        )?
        .calibration()
        .map(<[f64]>::to_vec);
        Ok(Self {
            loaded,
            chat,
            prompt,
            norm: score.norm,
            calibration,
        })
    }

    /// `{"label", "score"}` for one JSON record (`text`, or `premise` and `hypothesis`).
    pub fn predict(&self, record: &serde_json::Value) -> Result<serde_json::Value> {
        let fields = record_fields(self.prompt.task, record)?;
        let mut scorer = LabelScorer::new(
            self.loaded.model.as_ref(),
            &self.loaded.tokenizer,
            &self.prompt,
            &[],
            self.chat.as_ref(),
            &ScoreOptions {
                calibrate: false,
                norm: self.norm,
            },
        )?;
        scorer.set_calibration(self.calibration.clone());
        let (label, score) = scorer.predict(&LabelExample {
            fields,
            label: None,
        })?;
        Ok(serde_json::json!({"label": label, "score": score}))
    }
}

impl crate::Predictor for LabelPredictor {
    fn task(&self) -> TaskKind {
        self.prompt.task
    }

    fn predict_batch(&self, records: &[serde_json::Value]) -> Vec<Result<serde_json::Value>> {
        records.iter().map(|r| self.predict(r)).collect()
    }
}
