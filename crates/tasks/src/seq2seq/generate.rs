//! Generating with an encoder-decoder for translate and summarize: `eval` (every record's
//! source through the encoder, greedy, sampled or beam decoding, scored with the task's metric)
//! and `predict`.

use super::source_text;
use crate::common::best_beam::best_beam_texts;
use crate::generative::eval::{score, GenEvalOptions, Scored};
use crate::generative::{GenData, GenTask};
use crate::{Predictor, Result, TaskError, TaskKind};
use serde_json::{json, Value};
use tasklm_generate::{sample, BeamParams, RowInput, SamplingParams, Seq2SeqSteps};
use tasklm_hub::{Checkpoint, LoadOptions};
use tasklm_models::seq2seq::Seq2SeqModel;
use tasklm_text::TextTokenizer;

/// The checkpoint's encoder-decoder.
fn model_of(ck: &Checkpoint) -> Result<&Seq2SeqModel> {
    ck.seq2seq()
        .ok_or_else(|| TaskError::Invalid("not an encoder-decoder".into()))
}

/// Loads the encoder-decoder `spec` names.
fn load(spec: &str, progress: bool) -> Result<Checkpoint> {
    let source = tasklm_hub::resolve(spec, progress)?;
    let ck = tasklm_hub::load_model(&source, LoadOptions::default(), &candle_core::Device::Cpu)?;
    if ck.seq2seq().is_none() {
        return Err(TaskError::File {
            path: source.path().to_path_buf(),
            msg: "expected an encoder-decoder (T5, BART, Marian)".into(),
        });
    }
    Ok(ck)
}

/// The model's output for each source, in batches of `batch_size`: beam search when `beam` is
/// set, else `sampling` (greedy at temperature 0).
pub fn generate_for(
    model: &Seq2SeqModel,
    tok: &TextTokenizer,
    sources: &[&str],
    sampling: &SamplingParams,
    beam: Option<&BeamParams>,
    batch_size: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<String>> {
    let max_src = model.max_source_tokens().unwrap_or(usize::MAX);
    let steps = Seq2SeqSteps::new(model);
    let mut out = Vec::with_capacity(sources.len());
    for chunk in sources.chunks(batch_size.max(1)) {
        let rows = chunk
            .iter()
            .map(|s| Ok(RowInput::from_ids(super::encode_capped(tok, s, max_src)?.0)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(b) = beam {
            for text in best_beam_texts(&steps, tok, &rows, b, sampling.max_new_tokens)? {
                out.push(text.trim().to_string());
            }
        } else {
            for g in sample(&steps, tok, &rows, sampling, &mut |_, _| {})? {
                out.push(g.text.trim().to_string());
            }
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// `tasklm eval --task translate|summarize` on an encoder-decoder: every record's source
/// through the model, scored with the task's metric (sacreBLEU and chrF, ROUGE).
pub fn evaluate(model: &str, data: &GenData, opts: &GenEvalOptions) -> Result<Scored> {
    if opts.samples != 1 {
        return Err(TaskError::Invalid(
            "--samples: an encoder-decoder is scored on one output per record".into(),
        ));
    }
    let mut records = data.read()?;
    records.truncate(opts.limit.unwrap_or(usize::MAX));
    let ck = load(model, opts.progress)?;
    let sources = records
        .iter()
        .map(|r| source_text(data.task, r))
        .collect::<Result<Vec<_>>>()?;
    let bar = crate::common::progress::eval_bar(sources.len(), opts.progress);
    let outs = generate_for(
        model_of(&ck)?,
        &ck.tokenizer,
        &sources,
        &opts.sampling,
        opts.beam.as_ref(),
        opts.batch_size,
        &bar,
    )?;
    bar.finish_and_clear();
    let gens: Vec<Vec<String>> = outs.into_iter().map(|o| vec![o]).collect();
    score(data, &records, &gens, opts)
}

/// An encoder-decoder answering one record at a time (`tasklm predict`, the server).
pub struct Seq2SeqPredictor {
    ck: Checkpoint,
    task: GenTask,
    sampling: SamplingParams,
    beam: Option<BeamParams>,
}

impl Seq2SeqPredictor {
    pub fn load(model: &str, task: GenTask, sampling: SamplingParams) -> Result<Self> {
        Ok(Self {
            ck: load(model, true)?,
            task,
            sampling,
            beam: None,
        })
    }

    /// Beam search instead of greedy decoding.
    pub fn with_beam(mut self, beam: Option<BeamParams>) -> Self {
        self.beam = beam;
        self
    }

    fn predict_one(&self, record: &Value) -> Result<Value> {
        let r = crate::generative::predict::gen_record(self.task, record)?;
        let src = source_text(self.task, &r)?;
        let bar = indicatif::ProgressBar::hidden();
        let out = generate_for(
            model_of(&self.ck)?,
            &self.ck.tokenizer,
            &[src],
            &self.sampling,
            self.beam.as_ref(),
            1,
            &bar,
        )?;
        Ok(json!({"prediction": out.into_iter().next().unwrap_or_default()}))
    }
}

impl Predictor for Seq2SeqPredictor {
    fn task(&self) -> TaskKind {
        self.task.kind()
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records.iter().map(|r| self.predict_one(r)).collect()
    }
}
