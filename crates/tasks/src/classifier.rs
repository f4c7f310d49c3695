//! `classify` and `nli` for any model: an encoder gets a classification head
//! ([`crate::encoder_classify`]), a decoder completes a label word ([`crate::label_task`]).
//! The choice follows the model's `config.json`; both answer `{"label", "score"}`.

use crate::encoder_classify::{self, EncoderClassifier};
use crate::label_prompt::LabelExample;
use crate::label_task::{self, LabelEval, LabelEvalJob, LabelPredictor, PromptOverrides};
use crate::sft::{Notice, SftJob, SftReport};
use crate::{Result, TaskError};
use tasklm_hub::ModelKind;

/// Whether `model` is an encoder (BERT family).
pub fn is_encoder(model: &str, progress: bool) -> Result<bool> {
    let source = tasklm_hub::resolve(model, progress)?;
    Ok(tasklm_hub::model_kind(&source)? == ModelKind::Encoder)
}

/// Names the decoder-only options that were set, for an encoder model.
fn refuse_decoder_options(options: &[(&str, bool)]) -> Result<()> {
    let set: Vec<&str> = options.iter().filter(|o| o.1).map(|o| o.0).collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(TaskError::Invalid(format!(
        "{} apply to decoder models (label prompts); this model is an encoder with a \
         classification head",
        set.join(", ")
    )))
}

fn overrides_set(o: &PromptOverrides) -> [(&'static str, bool); 2] {
    [
        ("--prompt-template", o.template.is_some()),
        ("--label-words", o.words.is_some()),
    ]
}

/// `tasklm train --task classify|nli`.
pub fn train(
    task: &str,
    job: &SftJob,
    overrides: &PromptOverrides,
    notice: Notice,
) -> Result<SftReport> {
    if is_encoder(&job.model, job.progress)? {
        refuse_decoder_options(&overrides_set(overrides))?;
        encoder_classify::train(task, job, notice)
    } else {
        label_task::train(task, job, overrides, notice)
    }
}

/// `tasklm eval --task classify|nli`.
pub fn evaluate(job: &LabelEvalJob, notice: Notice) -> Result<LabelEval> {
    if !is_encoder(&job.model, job.progress)? {
        return label_task::evaluate(job, notice);
    }
    let o = overrides_set(&job.overrides);
    refuse_decoder_options(&[
        o[0],
        o[1],
        ("--shots", job.shots > 0),
        ("--calibrate", job.score.calibrate),
        (
            "--length-norm",
            job.score.norm != tasklm_generate::LabelNorm::Sum,
        ),
        ("--chat", job.chat),
    ])?;
    let (examples, skipped) = label_task::read_examples(&job.task, &job.data)?;
    if skipped > 0 {
        notice(&format!(
            "{}: {skipped} rows without an NLI label skipped",
            job.data.display()
        ));
    }
    let examples: Vec<LabelExample> = examples
        .into_iter()
        .take(job.limit.unwrap_or(usize::MAX))
        .collect();
    let clf =
        encoder_classify::load_for_eval(&job.task, &job.model, &examples, job.max_seq_len, notice)?;
    encoder_classify::evaluate_examples(&clf, &examples, job.progress)
}

/// Answers one JSON record with `{"label", "score"}`.
pub trait RecordPredictor {
    fn predict(&self, record: &serde_json::Value) -> Result<serde_json::Value>;
}

impl RecordPredictor for LabelPredictor {
    fn predict(&self, record: &serde_json::Value) -> Result<serde_json::Value> {
        LabelPredictor::predict(self, record)
    }
}

struct EncoderPredictor {
    task: String,
    clf: EncoderClassifier,
}

impl RecordPredictor for EncoderPredictor {
    fn predict(&self, record: &serde_json::Value) -> Result<serde_json::Value> {
        let ex = LabelExample {
            fields: label_task::record_fields(&self.task, record)?,
            label: None,
        };
        self.clf.predict(&ex)
    }
}

/// Loads `model` for `tasklm predict --task classify|nli`. An encoder needs a trained head.
pub fn load_predictor(
    task: &str,
    model: &str,
    overrides: &PromptOverrides,
    chat: bool,
    score: label_task::ScoreOptions,
) -> Result<Box<dyn RecordPredictor>> {
    if !is_encoder(model, true)? {
        return Ok(Box::new(LabelPredictor::load(
            task, model, overrides, chat, score,
        )?));
    }
    let o = overrides_set(overrides);
    refuse_decoder_options(&[
        o[0],
        o[1],
        ("--calibrate", score.calibrate),
        (
            "--length-norm",
            score.norm != tasklm_generate::LabelNorm::Sum,
        ),
        ("--chat", chat),
    ])?;
    let source = tasklm_hub::resolve(model, true)?;
    let ck = tasklm_hub::load_encoder(&source, &candle_core::Device::Cpu)?;
    let max_len = crate::encoder_input::saved_setting(&source, "max_seq_len")
        .unwrap_or(encoder_classify::DEFAULT_MAX_LEN);
    let clf = EncoderClassifier::new(ck, None, max_len)?;
    Ok(Box::new(EncoderPredictor {
        task: task.to_string(),
        clf,
    }))
}
