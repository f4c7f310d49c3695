//! `tasklm eval`: a model's standard metric on a task's data, as a table or one JSON object.

use super::train::{parse_task, task_help, TruncationArg};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tasklm_tasks::{EvalJob, GenerationOptions, TaskKind, TaskOptions};

#[derive(Args, Clone, Debug)]
pub struct EvalCmd {
    #[arg(long, value_parser = parse_task, help = task_help())]
    pub task: TaskKind,
    /// Model: a trained directory (a LoRA adapter's too), catalog name, Hugging Face directory,
    /// .gguf file or hub id.
    #[arg(long, required_unless_present = "adapter")]
    pub model: Option<String>,
    #[command(flatten)]
    pub adapter: super::lora::AdapterFlags,
    /// Evaluation data (JSONL).
    #[arg(long)]
    pub data: PathBuf,
    /// Longest sequence in tokens [default: the model's context window or 2048, the smaller].
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    #[arg(long, value_enum, default_value = "left")]
    pub truncation: TruncationArg,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Chat template (chat): llama2 or chatml [default: the model's own].
    #[arg(long)]
    pub template: Option<String>,
    #[command(flatten)]
    pub label: super::train::LabelPromptFlags,
    /// classify/nli: put K labelled examples in the prompt (few-shot).
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// classify/nli: draw the shots from this file [default: --data, whose drawn rows are
    /// then not scored].
    #[arg(long)]
    pub shots_from: Option<PathBuf>,
    /// classify/nli: seed of the shot draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub scoring: super::train::LabelScoreFlags,
    /// Score only the first N records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// qa: tokens shared by consecutive windows of a long context [default: the trained
    /// model's, else 128].
    #[arg(long)]
    pub doc_stride: Option<usize>,
    /// vqa, easy-VQA layout: the images folder [default: images/ beside the questions file].
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// vqa: the allowed answers, one per line (easy-VQA's answers.txt): each question gets the
    /// likeliest of them instead of a generated answer.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    #[command(flatten)]
    pub langs: super::train::LangFlags,
    /// Generative tasks: tokens generated per record [default: per task, 32 to 384].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Generative tasks: sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Generative tasks: nucleus sampling mass (with --temperature > 0).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Generative tasks: samples per record (code: pass@k over them).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Generative tasks, rag and vqa: write one JSON line per record (id or question,
    /// prediction, references or answer, score).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// code: the Python that runs the tests.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print one JSON object on stdout: the metrics under their reference names, and `n`.
    #[arg(long)]
    pub json: bool,
    /// Generative tasks: beam search instead of sampling.
    #[command(flatten)]
    pub beams: super::beam_args::BeamArgs,
    #[command(flatten)]
    pub rag: super::rag::RagFlags,
}

pub fn run(c: EvalCmd) -> Result<()> {
    let notice = |m: &str| eprintln!("{m}");
    let (model, _view) = c.adapter.model_spec(c.model.as_deref(), None)?;
    // A model directory's generation_config.json gives the beam defaults, as for `generate`.
    let model_dir = std::path::Path::new(&model);
    let beam = c
        .beams
        .resolve(model_dir.is_dir().then_some(model_dir), 0)?;
    let job = EvalJob {
        task: c.task,
        model,
        data: c.data,
        max_seq_len: c.max_seq_len,
        truncation: c.truncation.into(),
        batch_size: c.batch_size,
        limit: c.limit,
        shots: c.shots,
        shots_from: c.shots_from,
        seed: c.seed,
        generation: GenerationOptions {
            max_new_tokens: c.max_new_tokens,
            temperature: c.temperature,
            top_p: c.top_p,
            samples: c.samples,
            predictions: c.predictions,
            python: c.python,
            beam,
        },
        progress: true,
        options: TaskOptions {
            template: c.template,
            prompt: c.label.overrides(),
            score: c.scoring.score_options(),
            chat: c.scoring.chat,
            doc_stride: c.doc_stride,
            langs: c.langs.pair(),
            rag: c.rag.options(),
            vqa: tasklm_tasks::vqa::VqaOptions {
                images: c.images,
                labels: c.labels,
                ..Default::default()
            },
            ..TaskOptions::default()
        },
    };
    let r = tasklm_tasks::evaluate(&job, &notice).context("evaluation failed")?;
    if c.json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.table());
    }
    Ok(())
}
