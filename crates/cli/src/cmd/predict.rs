//! `tasklm predict`: JSONL records in, one JSON answer per line out.

use super::train::{LabelPromptFlags, LabelScoreFlags, Task};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct PredictCmd {
    #[arg(long, value_enum)]
    pub task: Task,
    /// Model: a trained directory, catalog name, Hugging Face directory, .gguf file or hub id.
    #[arg(long)]
    pub model: String,
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
}

pub fn run(c: PredictCmd) -> Result<()> {
    if c.task.generative().is_none()
        && !matches!(c.task, Task::Classify | Task::Nli | Task::Ner | Task::Qa)
    {
        bail!(
            "predict serves the classification, tagging, QA and generative tasks; use `tasklm generate` or `tasklm chat` for {}",
            c.task.name()
        );
    }
    let reader: Box<dyn BufRead> = match &c.input {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("{}", p.display()))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let name = c
        .input
        .as_ref()
        .map_or("stdin".to_string(), |p| p.display().to_string());
    let p: Box<dyn tasklm_tasks::classifier::RecordPredictor> = if let Some(g) = c.task.generative()
    {
        let sampling = tasklm_generate::SamplingParams {
            max_new_tokens: g.default_max_new_tokens(),
            stop: g.stops(),
            ..tasklm_generate::SamplingParams::greedy(g.default_max_new_tokens())
        };
        Box::new(tasklm_tasks::generative::GenPredictor::load(
            &c.model,
            c.langs.data(g, std::path::Path::new("")),
            sampling,
        )?)
    } else if c.task == Task::Ner {
        Box::new(tasklm_tasks::encoder_ner::load_predictor(&c.model)?)
    } else if c.task == Task::Qa {
        Box::new(tasklm_tasks::encoder_qa::load_predictor(&c.model)?)
    } else {
        tasklm_tasks::classifier::load_predictor(
            c.task.name(),
            &c.model,
            &c.label.overrides(),
            c.scoring.chat,
            c.scoring.score_options(),
        )?
    };
    let mut out = std::io::stdout().lock();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: reading line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{name}:{}: invalid JSON", i + 1))?;
        let answer = p.predict(&v).with_context(|| format!("{name}:{}", i + 1))?;
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}
