//! `tasklm predict`: JSONL records in, one JSON answer per line out.

use super::train::{parse_task, task_help, LabelPromptFlags, LabelScoreFlags};
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use tasklm_tasks::{PredictJob, TaskKind, TaskOptions};

#[derive(Args, Clone, Debug)]
pub struct PredictCmd {
    #[arg(long, value_parser = parse_task, help = task_help())]
    pub task: TaskKind,
    /// Model: a trained directory (a LoRA adapter's too), catalog name, Hugging Face directory,
    /// .gguf file or hub id.
    #[arg(long, required_unless_present = "adapter")]
    pub model: Option<String>,
    #[command(flatten)]
    pub adapter: super::lora::AdapterFlags,
    /// JSONL records ({"text"} for classify and ner, {"premise", "hypothesis"} for nli); `-`
    /// or absent reads stdin. ner prints {"entities": [{entity, type, start, end, score}]};
    /// qa reads {"question", "context"} and prints {"answer", "start", "end", "score"}.
    #[arg(long)]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub label: LabelPromptFlags,
    #[command(flatten)]
    pub langs: super::train::LangFlags,
    #[command(flatten)]
    pub scoring: LabelScoreFlags,
    /// Generative tasks and rag: tokens generated per record [default: per task, 32 to 384].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Generative tasks: beam search instead of greedy decoding.
    #[command(flatten)]
    pub beams: super::beam_args::BeamArgs,
    /// vqa: the allowed answers, one per line: each question gets the likeliest of them.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

pub fn run(c: PredictCmd) -> Result<()> {
    let (model, _view) = c.adapter.model_spec(c.model.as_deref(), None)?;
    // A model directory's generation_config.json gives the beam defaults, as for `eval`.
    let model_dir = std::path::Path::new(&model);
    let beam = c
        .beams
        .resolve(model_dir.is_dir().then_some(model_dir), 0)?;
    let job = PredictJob {
        task: c.task,
        model,
        progress: true,
        options: TaskOptions {
            prompt: c.label.overrides(),
            score: c.scoring.score_options(),
            chat: c.scoring.chat,
            langs: c.langs.pair(),
            beam,
            max_new_tokens: c.max_new_tokens,
            vqa: tasklm_tasks::vqa::VqaOptions {
                labels: c.labels,
                ..Default::default()
            },
            ..TaskOptions::default()
        },
    };
    // Load before reading, so a wrong task or model fails before any input is asked for.
    let p = tasklm_tasks::predictor(&job)?;
    let mut out = std::io::stdout().lock();
    super::input::for_each_record(c.input.as_deref(), |v, line, name| {
        let answer = p.predict(&v).with_context(|| format!("{name}:{line}"))?;
        writeln!(out, "{answer}")?;
        out.flush()?;
        Ok(())
    })?;
    Ok(())
}
