//! Scoring labels with a decoder: zero-shot, few-shot (`--shots K` examples in the prompt) and
//! contextually calibrated (`--calibrate`: each label's log-probability for a content-free
//! input is subtracted, Zhao et al. 2021), evaluated with accuracy and macro-F1.

use crate::label_prompt::{LabelExample, LabelPrompt};
use crate::{Result, TaskError};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;
use tasklm_generate::{label_logprobs, label_probabilities, LabelNorm};
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
pub fn read_examples(task: &str, path: &Path) -> Result<(Vec<LabelExample>, usize)> {
    match task {
        "classify" => {
            let r = tasklm_data::read_classify(path)?;
            Ok((r.iter().map(LabelExample::from).collect(), 0))
        }
        "nli" => {
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

/// Scores every example (with a progress bar when `progress`).
pub fn evaluate_examples(
    scorer: &LabelScorer,
    examples: &[LabelExample],
    progress: bool,
) -> Result<LabelEval> {
    let bar = if progress {
        indicatif::ProgressBar::new(examples.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "eval [{bar:28}] {pos}/{len} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    for ex in examples {
        let Some(label) = &ex.label else { continue };
        let (p, _) = scorer.predict(ex)?;
        truth.push(label.clone());
        pred.push(p.to_string());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(LabelEval {
        accuracy: tasklm_eval::accuracy(&truth, &pred),
        macro_f1: tasklm_eval::macro_f1(&truth, &pred),
        n: truth.len(),
    })
}
