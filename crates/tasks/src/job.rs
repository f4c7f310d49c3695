//! What a caller asks of a task: one job type per entry point (train, evaluate, predict), the
//! same for every family, with the settings only some tasks read gathered in [`TaskOptions`].

use crate::classify::{PromptOverrides, ScoreOptions};
use crate::TaskKind;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tasklm_data::Truncation;
use tasklm_train::TrainArgs;

/// Where a task's notices go (truncated records, fresh heads, skipped rows): printed as they
/// happen so that nothing is silent, and kept in the [`crate::Report`].
pub type Notice<'a> = &'a dyn Fn(&str);

/// Settings that only some tasks read.
#[derive(Clone, Debug, Default)]
pub struct TaskOptions {
    /// sft: pack several records into each sequence (block-diagonal attention).
    pub pack: bool,
    /// chat: a built-in template (`llama2`, `chatml`) instead of the model's own.
    pub template: Option<String>,
    /// classify, nli with a decoder: the prompt template and label words.
    pub prompt: PromptOverrides,
    /// classify, nli with a decoder: how labels are scored (eval, predict).
    pub score: ScoreOptions,
    /// classify, nli with a decoder: wrap the prompt in the chat template as a user turn.
    pub chat: bool,
    /// qa: tokens shared by consecutive windows of a long context [default: 128, or the trained
    /// model's].
    pub doc_stride: Option<usize>,
    /// translate: source and target language codes (the suffixes of line-aligned files).
    pub langs: Option<(String, String)>,
    /// Train a LoRA adapter instead of every weight (`--lora`); empty targets take the
    /// architecture's defaults ([`crate::common::lora_out::default_targets`]).
    pub lora: Option<tasklm_train::LoraTraining>,
    /// rag: the index, passages per prompt, search mode and context source.
    pub rag: crate::rag::RagOptions,
    /// translate, summarize on an encoder-decoder: a fresh model's arch, config and
    /// tokenizer, and label smoothing.
    pub seq2seq: crate::seq2seq::Seq2SeqOptions,
    /// predict of a generative task: beam search instead of greedy decoding.
    pub beam: Option<tasklm_generate::BeamParams>,
    /// predict of a generative task or rag: tokens generated per record [default: the task's].
    pub max_new_tokens: Option<usize>,
    /// vqa: the vision encoder, the images folder and the training stage.
    pub vqa: crate::vqa::VqaOptions,
}

/// One `tasklm train` run.
#[derive(Clone, Debug)]
pub struct TrainJob {
    pub task: TaskKind,
    /// Base model: a catalog name, a Hugging Face directory, a .gguf file or a hub id.
    pub model: String,
    pub data: PathBuf,
    pub eval: Option<PathBuf>,
    /// Output directory: checkpoints, `metrics.jsonl`, and the trained model.
    pub out: PathBuf,
    pub max_seq_len: Option<usize>,
    pub truncation: Truncation,
    pub args: TrainArgs,
    /// Continue from the newest complete checkpoint in `out`.
    pub resume: bool,
    pub progress: bool,
    /// Set to stop after the current update with a checkpoint (Ctrl-C).
    pub stop: Option<Arc<AtomicBool>>,
    pub options: TaskOptions,
}

impl TrainJob {
    /// A job with the default trainer settings and no task options.
    pub fn new(task: TaskKind, model: &str, data: PathBuf, out: PathBuf) -> Self {
        Self {
            task,
            model: model.to_string(),
            data,
            eval: None,
            out,
            max_seq_len: None,
            truncation: Truncation::Left,
            args: TrainArgs::default(),
            resume: false,
            progress: false,
            stop: None,
            options: TaskOptions::default(),
        }
    }
}

/// How the generative tasks generate when evaluated.
#[derive(Clone, Debug)]
pub struct GenerationOptions {
    /// Tokens generated per record [default: per task, 32 to 384].
    pub max_new_tokens: Option<usize>,
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus sampling mass (with temperature > 0).
    pub top_p: f32,
    /// Samples per record (code: pass@k over them).
    pub samples: usize,
    /// Write one JSON line per record (id, prediction, references, score).
    pub predictions: Option<PathBuf>,
    /// code: the Python that runs the tests.
    pub python: String,
    /// Beam search instead of sampling (its `max_new_tokens` is replaced by the task's).
    pub beam: Option<tasklm_generate::BeamParams>,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: None,
            temperature: 0.0,
            top_p: 0.95,
            samples: 1,
            predictions: None,
            python: "python3".into(),
            beam: None,
        }
    }
}

/// One `tasklm eval` run.
#[derive(Clone, Debug)]
pub struct EvalJob {
    pub task: TaskKind,
    pub model: String,
    pub data: PathBuf,
    /// Longest sequence in tokens [default: per task, or the trained model's].
    pub max_seq_len: Option<usize>,
    pub truncation: Truncation,
    pub batch_size: usize,
    /// Score only the first N records.
    pub limit: Option<usize>,
    /// classify, nli with a decoder: labelled examples put in the prompt (few-shot), drawn
    /// with `seed` from `shots_from` (default: the data, whose drawn rows are then not scored).
    pub shots: usize,
    pub shots_from: Option<PathBuf>,
    /// Seed of the shot draw and of sampling.
    pub seed: u64,
    pub generation: GenerationOptions,
    pub progress: bool,
    pub options: TaskOptions,
}

impl EvalJob {
    /// A job with the defaults of `tasklm eval`.
    pub fn new(task: TaskKind, model: &str, data: PathBuf) -> Self {
        Self {
            task,
            model: model.to_string(),
            data,
            max_seq_len: None,
            truncation: Truncation::Left,
            batch_size: 8,
            limit: None,
            shots: 0,
            shots_from: None,
            seed: 0,
            generation: GenerationOptions::default(),
            progress: false,
            options: TaskOptions::default(),
        }
    }
}

/// Loading a model to answer records (`tasklm predict`, the server's task endpoints).
#[derive(Clone, Debug)]
pub struct PredictJob {
    pub task: TaskKind,
    pub model: String,
    pub progress: bool,
    pub options: TaskOptions,
}

impl PredictJob {
    pub fn new(task: TaskKind, model: &str) -> Self {
        Self {
            task,
            model: model.to_string(),
            progress: false,
            options: TaskOptions::default(),
        }
    }
}
