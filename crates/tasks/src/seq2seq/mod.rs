//! Translation and summarization on an encoder-decoder (T5, BART, Marian): the source goes to
//! the encoder as it is (no prompt), the decoder learns the target. `train` fine-tunes a
//! seq2seq checkpoint or, with `--arch`, trains a fresh one ([`fresh`]); `eval` and `predict`
//! take this path whenever the model's `config.json` holds an encoder-decoder.

pub mod fresh;
pub mod generate;
pub mod objective;

pub use generate::{evaluate, Seq2SeqPredictor};

use crate::common::lm_runner::{train_options, EncodedStats, TrainOutcome};
use crate::common::lora_out::{adapter_config, lora_settings};
use crate::common::provenance::{data_entry, data_entry_files};
use crate::generative::{GenData, GenTask};
use crate::{Notice, Result, TaskError, TrainJob};
use objective::{trainable_seq2seq, trainable_seq2seq_lora, EncodedPair, Seq2SeqObjective};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tasklm_data::{EncodeStats, GenRecord, Truncation};
use tasklm_hub::LoadOptions;
use tasklm_models::{ModelArchitecture, ModelKind};
use tasklm_text::TextTokenizer;

/// How an encoder-decoder is trained (`--arch`, `--model-config`, `--tokenizer`,
/// `--label-smoothing`).
#[derive(Clone, Debug, Default)]
pub struct Seq2SeqOptions {
    /// Train a fresh model of this architecture (`t5`, `bart`, `marian`) instead of
    /// fine-tuning `--model`.
    pub arch: Option<String>,
    /// TOML of `config.json` keys over the arch's defaults.
    pub model_config: Option<PathBuf>,
    /// The tokenizer of a fresh model (a directory with `tokenizer.json`).
    pub tokenizer: Option<PathBuf>,
    /// Label smoothing of the loss (transformers' `label_smoothing_factor`) [default: 0].
    pub label_smoothing: f64,
    /// Score each evaluation by generating (greedy): sacreBLEU and chrF for translate, ROUGE
    /// for summarize; also on when `metric_for_best_model` is one of them.
    pub predict_with_generate: bool,
}

/// The metrics an evaluation reports only when it generates.
pub const GENERATED_METRICS: [&str; 5] = ["bleu", "chrf", "rouge1", "rouge2", "rougeL"];

/// Whether `spec` names an encoder-decoder checkpoint (a GGUF file never is).
pub fn is_seq2seq(spec: &str, progress: bool) -> Result<bool> {
    let source = tasklm_hub::resolve(spec, progress)?;
    Ok(!source.is_gguf() && tasklm_hub::model_kind(&source)? == ModelKind::Seq2Seq)
}

/// The field of a record the encoder reads for `task`; an error for the tasks an
/// encoder-decoder does not take.
fn source_field(task: GenTask) -> Result<&'static str> {
    match task {
        GenTask::Translate => Ok("source"),
        GenTask::Summarize => Ok("document"),
        other => Err(TaskError::Invalid(format!(
            "an encoder-decoder trains translate and summarize; --task {} needs a decoder",
            other.name()
        ))),
    }
}

/// The source text of a record: what the encoder reads.
pub fn source_text(task: GenTask, r: &GenRecord) -> Result<&str> {
    Ok(r.field(source_field(task)?))
}

/// Token ids of `text` cut to `max` tokens, keeping a final EOS (as transformers' truncation
/// keeps the special tokens); returns whether it was cut.
pub fn encode_capped(tok: &TextTokenizer, text: &str, max: usize) -> Result<(Vec<u32>, bool)> {
    let mut ids = tok.encode(text, true)?;
    if ids.len() <= max {
        return Ok((ids, false));
    }
    let last = ids.last().copied();
    ids.truncate(max);
    if let (Some(l), Some(end)) = (last, ids.last_mut()) {
        if tok.is_eos(l) {
            *end = l;
        }
    }
    Ok((ids, true))
}

/// The longest source and target: the model's positions (BART, Marian), capped by
/// `--max-seq-len` [default 512 source, 256 target].
fn limits(
    model: &tasklm_models::seq2seq::Seq2SeqModel,
    max_seq_len: Option<usize>,
) -> (usize, usize) {
    let positions = model.max_source_tokens().unwrap_or(usize::MAX);
    let source = max_seq_len.unwrap_or(512).min(positions);
    let target = max_seq_len.unwrap_or(256).min(positions);
    (source, target)
}

/// Encodes `records`: pairs longer than the limits are cut or, with `Truncation::Drop`, left
/// out; an empty source or target is an error naming the record.
fn encode_pairs(
    task: GenTask,
    records: &[GenRecord],
    tok: &TextTokenizer,
    (max_src, max_tgt): (usize, usize),
    truncation: Truncation,
    path: &Path,
) -> Result<(Vec<EncodedPair>, EncodeStats)> {
    let mut stats = EncodeStats::default();
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let src = source_text(task, r)?;
        if src.trim().is_empty() || r.target.trim().is_empty() {
            return Err(TaskError::File {
                path: path.to_path_buf(),
                msg: format!("record {} ({}): empty source or target", i + 1, r.id),
            });
        }
        let (source, cs) = encode_capped(tok, src, max_src)?;
        let (target, ct) = encode_capped(tok, r.target.trim(), max_tgt)?;
        if cs || ct {
            if truncation == Truncation::Drop {
                stats.dropped += 1;
                continue;
            }
            stats.truncated += 1;
        }
        out.push(EncodedPair { source, target });
    }
    Ok((out, stats))
}

/// A model to train: fresh (`--arch`) or loaded, with its `config.json`, tokenizer and the
/// directory its tokenizer files come from.
struct Start {
    arch: ModelArchitecture,
    config: tasklm_models::ModelConfig,
    config_json: Value,
    tensors: std::collections::HashMap<String, candle_core::Tensor>,
    tokenizer: TextTokenizer,
    tokenizer_dir: PathBuf,
    generation_config: Value,
    base: String,
    /// The directory of a loaded model (None for a fresh one).
    base_dir: Option<PathBuf>,
}

fn start(job: &TrainJob) -> Result<Start> {
    let o = &job.options.seq2seq;
    if let Some(name) = &o.arch {
        if !job.model.is_empty() {
            return Err(TaskError::Invalid(format!(
                "--arch {name} trains a fresh model and --model `{}` names one to fine-tune: give one of them",
                job.model
            )));
        }
        let arch = fresh::parse_arch(name)?;
        let tok_dir = o.tokenizer.clone().ok_or_else(|| {
            TaskError::Invalid(format!(
                "--arch {name} needs --tokenizer DIR (a tokenizer.json, e.g. from `tasklm tokenizer train`)"
            ))
        })?;
        let tokenizer = TextTokenizer::from_dir(&tok_dir)?;
        let (config_json, config) =
            fresh::fresh_config(arch, o.model_config.as_deref(), &tokenizer, &tok_dir)?;
        let tensors = fresh::fresh_tensors(arch, &config_json, &config, job.args.seed)?;
        let generation_config = generation_config(&config_json);
        return Ok(Start {
            arch: ModelArchitecture::Seq2Seq(arch),
            config,
            config_json,
            tensors,
            tokenizer,
            tokenizer_dir: tok_dir,
            generation_config,
            base: format!("fresh {name}"),
            base_dir: None,
        });
    }
    if o.model_config.is_some() || o.tokenizer.is_some() {
        return Err(TaskError::Invalid(
            "--model-config and --tokenizer describe a fresh model: they need --arch".into(),
        ));
    }
    let source = tasklm_hub::resolve(&job.model, job.progress)?;
    let ck = tasklm_hub::load_model(&source, LoadOptions::default(), &candle_core::Device::Cpu)?;
    let dir = source.path().to_path_buf();
    let config_json = ck.config_json.clone().ok_or_else(|| TaskError::File {
        path: dir.clone(),
        msg: "an encoder-decoder needs its config.json".into(),
    })?;
    let generation_config = std::fs::read_to_string(dir.join("generation_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| generation_config(&config_json));
    Ok(Start {
        arch: ck.architecture,
        config: ck.config,
        config_json,
        tensors: ck.tensors,
        tokenizer: ck.tokenizer,
        tokenizer_dir: dir.clone(),
        generation_config,
        base: job.model.clone(),
        base_dir: Some(dir),
    })
}

/// The job's LoRA settings over the model `s` starts from, with its base directory; None
/// without `--lora`. Default targets as PEFT's for the architecture: T5's `q` and `v`, BART's
/// and Marian's `q_proj` and `v_proj`. A fresh model (`--arch`) has nothing to adapt, and an
/// encoder-decoder has no quantized (GGUF) form.
fn seq2seq_lora(
    job: &TrainJob,
    s: &Start,
) -> Result<Option<(tasklm_train::LoraTraining, PathBuf)>> {
    let Some(asked) = &job.options.lora else {
        return Ok(None);
    };
    let Some(base_dir) = s.base_dir.clone() else {
        return Err(TaskError::Invalid(format!(
            "--lora adapts a trained model, and {} is freshly initialised: give --model              (a trained encoder-decoder) instead of --arch, or drop --lora",
            s.base
        )));
    };
    if asked.quantized_base {
        return Err(TaskError::Invalid(
            "--quantized keeps a GGUF decoder's weights quantized; an encoder-decoder has no              GGUF form: drop --quantized"
                .into(),
        ));
    }
    let mut lora = lora_settings(asked, ModelKind::Seq2Seq, job.args.seed);
    if asked.targets.is_empty()
        && s.config_json.get("model_type").and_then(Value::as_str) != Some("t5")
    {
        lora.targets = vec!["q_proj".into(), "v_proj".into()];
    }
    Ok(Some((lora, base_dir)))
}

/// `generation_config.json` of a model without one: its special ids (Marian's pad banned, as
/// opus-mt's `bad_words_ids`).
fn generation_config(cfg: &Value) -> Value {
    let mut g = json!({});
    for k in [
        "decoder_start_token_id",
        "eos_token_id",
        "pad_token_id",
        "bos_token_id",
        "forced_eos_token_id",
    ] {
        if let Some(v) = cfg.get(k).filter(|v| !v.is_null()) {
            g[k] = v.clone();
        }
    }
    if cfg.get("model_type").and_then(Value::as_str) == Some("marian") {
        if let Some(p) = cfg.get("pad_token_id") {
            g["bad_words_ids"] = json!([[p]]);
        }
    }
    g
}

/// A data file's entry in `tasklm.json` (a translation prefix: each side with its sha256).
fn data_provenance(d: &GenData, records: usize) -> Result<Value> {
    match d.files() {
        Some(files) => data_entry_files(&d.path, &files, records),
        None => data_entry(&d.path, records),
    }
}

/// `tasklm train --task translate|summarize` on an encoder-decoder.
pub fn train(
    data: &GenData,
    eval: Option<&GenData>,
    job: &TrainJob,
    notice: Notice,
) -> Result<TrainOutcome> {
    source_field(data.task)?;
    let eps = job.options.seq2seq.label_smoothing;
    if !(0.0..1.0).contains(&eps) {
        return Err(TaskError::Invalid(format!(
            "--label-smoothing {eps}: expected a value in [0, 1)"
        )));
    }
    let s = start(job)?;
    let (model, params, adapter) = match seq2seq_lora(job, &s)? {
        None => {
            let (model, params) = trainable_seq2seq(s.arch, &s.config, s.tensors)?;
            (model, params, None)
        }
        Some((lora, base_dir)) => {
            let (model, p) = trainable_seq2seq_lora(s.arch, &s.config, s.tensors, &lora)?;
            let adapter = adapter_config(&lora, &p.layers, "SEQ_2_SEQ_LM", &base_dir);
            (model, p.params, Some(adapter))
        }
    };
    let lim = limits(&model, job.max_seq_len);
    let records = data.read()?;
    let (train, stats) = encode_pairs(
        data.task,
        &records,
        &s.tokenizer,
        lim,
        job.truncation,
        &job.data,
    )?;
    if stats.truncated + stats.dropped > 0 {
        notice(&format!(
            "{}: {} of {} pairs have a source longer than {} or a target longer than {} tokens: {} cut, {} dropped",
            job.data.display(),
            stats.truncated + stats.dropped,
            records.len(),
            lim.0,
            lim.1,
            stats.truncated,
            stats.dropped
        ));
    }
    if train.is_empty() {
        return Err(TaskError::File {
            path: job.data.clone(),
            msg: "no training pairs left".into(),
        });
    }
    let generate = job.options.seq2seq.predict_with_generate
        || job
            .args
            .metric_for_best_model
            .as_deref()
            .is_some_and(|m| GENERATED_METRICS.contains(&m));
    let (eval_pairs, generated_eval) = match eval {
        Some(e) => {
            let recs = e.read()?;
            let pairs =
                encode_pairs(e.task, &recs, &s.tokenizer, lim, Truncation::Left, &e.path)?.0;
            let g = generate
                .then(|| -> Result<objective::GeneratedEval> {
                    Ok(objective::GeneratedEval {
                        task: e.task,
                        tokenizer: s.tokenizer.clone(),
                        sources: recs
                            .iter()
                            .map(|r| source_text(e.task, r).map(String::from))
                            .collect::<Result<_>>()?,
                        references: recs.iter().map(|r| r.references.clone()).collect(),
                        max_new_tokens: e.task.default_max_new_tokens().min(lim.1),
                    })
                })
                .transpose()?;
            (pairs, g)
        }
        None if generate => return Err(TaskError::Invalid(
            "--predict-with-generate (or a generated --metric-for-best-model) needs --eval data"
                .into(),
        )),
        None => (Vec::new(), None),
    };
    let provenance = json!({
        "task": data.task.name(),
        "base_model": s.base,
        "langs": data.langs,
        "max_source_len": lim.0,
        "max_target_len": lim.1,
        "label_smoothing": eps,
        "train_args": job.args,
        "data": {
            "train": data_provenance(data, records.len())?,
            "eval": match eval {
                Some(e) => data_provenance(e, eval_pairs.len())?,
                None => Value::Null,
            },
        },
    });
    let n = train.len();
    let obj = Seq2SeqObjective {
        model,
        params,
        train,
        eval: eval_pairs,
        label_smoothing: eps,
        eval_batch_size: job.args.batch_size,
        config_json: s.config_json,
        generation_config: s.generation_config,
        tokenizer_dir: s.tokenizer_dir,
        provenance,
        generated_eval,
        adapter,
    };
    let summary = tasklm_train::train(&obj, &job.args, train_options(job))?;
    Ok(TrainOutcome {
        summary,
        train: EncodedStats {
            records: records.len(),
            kept: n,
            stats,
        },
        max_seq_len: lim.0,
        sequences: n,
    })
}
