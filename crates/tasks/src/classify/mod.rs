//! `classify` and `nli` (task families 3 and 4) for any model: an encoder gets a
//! classification head ([`encoder`]), a decoder completes a label word ([`decoder`], with the
//! prompt in [`prompt`]). The choice follows the model's `config.json`; both answer
//! `{"label", "score"}` and are scored with accuracy and macro-F1.

pub mod decoder;
pub mod encoder;
pub mod prompt;

pub use decoder::{LabelPredictor, PromptOverrides, ScoreOptions};
pub use encoder::EncoderClassifier;
pub use prompt::{LabelExample, LabelPrompt};

use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskFamily, TaskKind,
    TaskOptions, TrainJob,
};
use serde_json::Value;
use tasklm_hub::ModelKind;

/// The classification family (classify, nli).
pub struct Classify;

impl TaskFamily for Classify {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        let outcome = if is_encoder(&job.model, job.progress)? {
            refuse_decoder_options(&prompt_options_set(&job.options))?;
            encoder::train(job, notice)?
        } else {
            decoder::train(job, notice)?
        };
        Ok(outcome.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        let e = if is_encoder(&job.model, job.progress)? {
            let mut set = scoring_options_set(&job.options).to_vec();
            set.insert(2, ("--shots", job.shots > 0));
            refuse_decoder_options(&set)?;
            let (examples, skipped) = decoder::read_examples(job.task, &job.data)?;
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
                encoder::load_for_eval(job.task, &job.model, &examples, job.max_seq_len, notice)?;
            encoder::evaluate_examples(&clf, &examples, job.progress)?
        } else {
            decoder::evaluate(job, notice)?
        };
        Ok(Report::new(job.task)
            .metric("accuracy", e.accuracy)
            .metric("macro_f1", e.macro_f1)
            .count("n", e.n as u64))
    }

    /// An encoder needs a trained head; a decoder scores its label words.
    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        let o = &job.options;
        if !is_encoder(&job.model, true)? {
            let p = LabelPredictor::load(job.task, &job.model, &o.prompt, o.chat, o.score.clone())?;
            return Ok(Box::new(p));
        }
        refuse_decoder_options(&scoring_options_set(o))?;
        let (source, ck) =
            crate::common::encoder_runner::load_encoder_for(&job.model, job.task, true)?;
        let max_len = crate::common::tasklm_json::saved_setting(&source, "max_seq_len")
            .unwrap_or(encoder::DEFAULT_MAX_LEN);
        let clf = EncoderClassifier::new(ck, None, max_len, job.task, None)?;
        Ok(Box::new(EncoderPredictor {
            task: job.task,
            clf,
        }))
    }
}

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

fn prompt_options_set(o: &TaskOptions) -> [(&'static str, bool); 2] {
    [
        ("--prompt-template", o.prompt.template.is_some()),
        ("--label-words", o.prompt.words.is_some()),
    ]
}

/// The prompt and scoring options of eval and predict, in the order the error names them.
fn scoring_options_set(o: &TaskOptions) -> [(&'static str, bool); 5] {
    let [t, w] = prompt_options_set(o);
    [
        t,
        w,
        ("--calibrate", o.score.calibrate),
        (
            "--length-norm",
            o.score.norm != tasklm_generate::LabelNorm::Sum,
        ),
        ("--chat", o.chat),
    ]
}

/// An encoder classifier answering `{"text"}` or `{"premise", "hypothesis"}` records.
struct EncoderPredictor {
    task: TaskKind,
    clf: EncoderClassifier,
}

impl Predictor for EncoderPredictor {
    fn task(&self) -> TaskKind {
        self.task
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records
            .iter()
            .map(|r| {
                let ex = LabelExample {
                    fields: decoder::record_fields(self.task, r)?,
                    label: None,
                };
                self.clf.predict(&ex)
            })
            .collect()
    }
}
