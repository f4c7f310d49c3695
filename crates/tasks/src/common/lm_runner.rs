//! The decoder training runner that SFT, chat, the decoder label tasks and the generative
//! tasks share: records encoded into features (with every truncated or dropped record counted
//! and told), the decoder made trainable, the shared trainer run, and the model directory
//! written with its `tasklm.json`.

use crate::common::lora_out::{adapter_config, lora_settings};
use crate::common::tasklm_json::write_tasklm_json;
use crate::{Notice, Report, Result, TaskError, TaskKind, TrainJob};
use std::path::Path;
use tasklm_data::{EncodeStats, Features};
use tasklm_hub::adapter::ADAPTER_WEIGHTS;
use tasklm_hub::{write_model_files, write_tokenizer_files, ModelKind};
use tasklm_text::TextTokenizer;
use tasklm_train::{
    trainable_decoder, trainable_decoder_lora, LmObjective, TrainOptions, TrainSummary,
};

/// Longest sequence trained on when `--max-seq-len` is not given: the model's context window
/// or 2048, whichever is smaller.
pub fn default_max_seq_len(context: usize) -> usize {
    context.min(2048)
}

/// A data file encoded for a language-model objective.
#[derive(Clone, Debug)]
pub struct EncodedFile {
    pub features: Vec<Features>,
    /// Records read (kept + dropped).
    pub records: usize,
    pub stats: EncodeStats,
}

/// Counts of an encoded file, without its features.
#[derive(Clone, Copy, Debug)]
pub struct EncodedStats {
    pub records: usize,
    pub kept: usize,
    pub stats: EncodeStats,
}

impl EncodedFile {
    pub fn counts(&self) -> EncodedStats {
        EncodedStats {
            records: self.records,
            kept: self.features.len(),
            stats: self.stats,
        }
    }
}

/// Encodes every record of `path` with `encode` (None: dropped, counted in the stats); an
/// error names the file, and a file whose every record is dropped is an error that counts
/// them as `noun`.
pub fn encode_each<R>(
    path: &Path,
    records: &[R],
    max_len: usize,
    noun: &str,
    mut encode: impl FnMut(&R, &mut EncodeStats) -> tasklm_data::Result<Option<Features>>,
) -> Result<EncodedFile> {
    let mut stats = EncodeStats::default();
    let mut features = Vec::with_capacity(records.len());
    for rec in records {
        let f = encode(rec, &mut stats).map_err(|e| TaskError::File {
            path: path.into(),
            msg: e.to_string(),
        })?;
        features.extend(f);
    }
    if features.is_empty() {
        return Err(TaskError::File {
            path: path.into(),
            msg: format!(
                "all {} {noun} are longer than --max-seq-len {max_len}",
                records.len()
            ),
        });
    }
    Ok(EncodedFile {
        features,
        records: records.len(),
        stats,
    })
}

/// What a training run did, before it becomes a [`Report`].
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub summary: TrainSummary,
    pub train: EncodedStats,
    pub max_seq_len: usize,
    /// Sequences trained on (fewer than records when packed; windows for QA).
    pub sequences: usize,
}

impl TrainOutcome {
    /// The run as a [`Report`]: the final evaluation's metrics, the counts (`steps`,
    /// `records`, `kept`, `sequences`, `tokens`, `refused`, `max_seq_len`), the training
    /// time and the per-update losses.
    pub fn into_report(self, task: TaskKind) -> Report {
        let s = &self.summary;
        let mut r = Report::new(task)
            .count("steps", s.steps)
            .count("records", self.train.records as u64)
            .count("kept", self.train.kept as u64)
            .count("sequences", self.sequences as u64)
            .count("tokens", s.tokens as u64)
            .count("refused", s.refused)
            .count("max_seq_len", self.max_seq_len as u64)
            .timing("train_s", s.elapsed_s);
        for (k, v) in s.final_eval.iter().flatten() {
            r = r.metric(k.clone(), *v);
        }
        r.losses = self.summary.losses;
        r
    }
}

/// The trainer settings of `job` for [`tasklm_train::train`].
pub fn train_options(job: &TrainJob) -> TrainOptions<'_> {
    TrainOptions {
        out: &job.out,
        resume: job.resume,
        progress: job.progress,
        stop: job.stop.as_deref(),
    }
}

/// Loads the decoder `job` trains from `source`: with `--lora --quantized`, a GGUF base's
/// matrices stay quantized (QLoRA-style); otherwise every tensor is f32, and `--lora` on a
/// GGUF without `--quantized` is told that the option exists.
pub fn load_for_training(
    job: &TrainJob,
    source: &tasklm_hub::ModelSource,
    notice: Notice,
) -> Result<tasklm_hub::DecoderCheckpoint> {
    let quantized = job.options.lora.as_ref().is_some_and(|l| l.quantized_base);
    if quantized && !source.is_gguf() {
        return Err(TaskError::Invalid(format!(
            "--quantized needs a GGUF base model; {} is not one",
            source.path().display()
        )));
    }
    if job.options.lora.is_some() && !quantized && source.is_gguf() {
        notice(&format!(
            "{}: LoRA over the f32-dequantized GGUF base; --quantized keeps its matrices \
             quantized in memory (QLoRA-style)",
            source.path().display()
        ));
    }
    let opts = tasklm_hub::LoadOptions {
        dtype: candle_core::DType::F32,
        quantized,
    };
    Ok(tasklm_hub::load_checkpoint_with(
        source,
        opts,
        &candle_core::Device::Cpu,
    )?)
}

/// Trains the decoder of `ck` on `train_features` (encoded from `train_file`), evaluating on
/// `eval_file`, and writes the model with `tok` and `provenance` as `tasklm.json`.
pub fn fit_lm(
    job: &TrainJob,
    ck: tasklm_hub::DecoderCheckpoint,
    tok: &TextTokenizer,
    (train_features, train_file): (Vec<Features>, &EncodedFile),
    eval_file: Option<&EncodedFile>,
    mut provenance: serde_json::Value,
    max_len: usize,
) -> Result<TrainOutcome> {
    let (arch, cfg) = (ck.architecture, ck.config.clone());
    if !ck.quantized.is_empty() {
        // Read back by the hub: the adapter then loads over the base kept quantized.
        provenance["quantized_base"] = true.into();
    }
    let (model, params, weights_file, adapter) = match &job.options.lora {
        None if !ck.quantized.is_empty() => {
            return Err(TaskError::Invalid(
                "a quantized base trains LoRA adapters only: add --lora, or drop --quantized"
                    .into(),
            ))
        }
        None => {
            let (model, params) = trainable_decoder(arch, &cfg, ck.tensors)?;
            (model, params, "model.safetensors", None)
        }
        Some(lora) => {
            let lora = lora_settings(lora, ModelKind::Decoder, job.args.seed);
            let (model, p) = trainable_decoder_lora(arch, &cfg, ck.tensors, ck.quantized, &lora)?;
            let adapter = adapter_config(&lora, &p.layers, "CAUSAL_LM", ck.source.path());
            (model, p.params, ADAPTER_WEIGHTS, Some(adapter))
        }
    };
    let files_tok = tok.clone();
    let obj = LmObjective {
        model,
        params,
        pad_id: tok.pad_id(),
        eval_batch_size: job.args.batch_size,
        train: train_features,
        eval: eval_file.map(|e| e.features.clone()).unwrap_or_default(),
        weights_file,
        files: Box::new(move |dir: &Path| {
            match &adapter {
                // An adapter directory: no config.json, so nothing takes it for a full model.
                Some(a) => a
                    .write(dir)
                    .and_then(|()| write_tokenizer_files(dir, &cfg, &files_tok)),
                None => write_model_files(dir, arch, &cfg, &files_tok),
            }
            .map_err(tasklm_train::TrainError::objective)?;
            write_tasklm_json(dir, &provenance).map_err(tasklm_train::TrainError::objective)
        }),
    };
    let sequences = obj.train.len();
    let summary = tasklm_train::train(&obj, &job.args, train_options(job))?;
    Ok(TrainOutcome {
        summary,
        train: train_file.counts(),
        max_seq_len: max_len,
        sequences,
    })
}

/// Tells how many records of `path` were cut or dropped for `--max-seq-len` (`noun` counts
/// them, `cut` says how they were cut).
pub fn report_encoding(
    path: &Path,
    f: &EncodedFile,
    max_len: usize,
    what: (&str, &str),
    notice: Notice,
) {
    let s = f.stats;
    let (noun, cut) = what;
    if s.truncated > 0 || s.dropped > 0 {
        notice(&format!(
            "{}: {} of {} {noun} are longer than --max-seq-len {max_len}: {} {cut}, {} dropped",
            path.display(),
            s.truncated + s.dropped,
            f.records,
            s.truncated,
            s.dropped
        ));
    }
}
