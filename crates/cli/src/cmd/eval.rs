//! `tasklm eval`: a model's standard metric on a task's data, as a table or one JSON object.

use super::train::{Task, TruncationArg};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use tasklm_tasks::{chat, classifier, label_task, sft};

#[derive(Args, Clone, Debug)]
pub struct EvalCmd {
    #[arg(long, value_enum)]
    pub task: Task,
    /// Model: a trained directory, catalog name, Hugging Face directory, .gguf file or hub id.
    #[arg(long)]
    pub model: String,
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
    /// Generative tasks: write one JSON line per record (id, prediction, references, score).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// code: the Python that runs the tests.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print one JSON object on stdout: the metrics under their reference names, and `n`.
    #[arg(long)]
    pub json: bool,
}

/// Prints `metrics` as a two-column table, or as one JSON object.
pub fn print_metrics(metrics: &[(&str, Value)], as_json: bool) {
    if as_json {
        let obj: Map<String, Value> = metrics
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        println!("{}", Value::Object(obj));
        return;
    }
    let w = metrics
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:<w$}  value", "metric");
    println!("{}  {}", "-".repeat(w), "-".repeat(12));
    for (k, v) in metrics {
        let shown = match v.as_f64() {
            Some(x) if v.is_f64() => format!("{x:.4}"),
            _ => v.to_string(),
        };
        println!("{k:<w$}  {shown}");
    }
}

pub fn run(c: EvalCmd) -> Result<()> {
    if c.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let notice = |m: &str| eprintln!("{m}");
    let r = match c.task {
        Task::Sft => sft::evaluate(
            &c.model,
            &c.data,
            c.max_seq_len,
            c.truncation.into(),
            c.batch_size,
            &notice,
        ),
        Task::Chat => chat::evaluate(
            &c.model,
            &c.data,
            c.template.as_deref(),
            c.max_seq_len,
            c.batch_size,
            &notice,
        ),
        Task::Classify | Task::Nli => return eval_labels(&c, &notice),
        Task::Ner => return eval_ner(&c, &notice),
        Task::Qa => return eval_qa(&c, &notice),
        Task::Genqa | Task::Summarize | Task::Translate | Task::Code | Task::Reasoning => {
            return eval_generative(&c)
        }
    }
    .context("evaluation failed")?;
    print_metrics(
        &[
            ("loss", json!(r.loss)),
            ("perplexity", json!(r.perplexity)),
            ("n", json!(r.n)),
            ("tokens", json!(r.tokens)),
        ],
        c.json,
    );
    Ok(())
}

/// Accuracy and macro-F1 of a classifier (classify, nli), encoder or decoder.
fn eval_labels(c: &EvalCmd, notice: tasklm_tasks::sft::Notice) -> Result<()> {
    let job = label_task::LabelEvalJob {
        task: c.task.name().into(),
        model: c.model.clone(),
        data: c.data.clone(),
        overrides: c.label.overrides(),
        shots: c.shots,
        shots_from: c.shots_from.clone(),
        seed: c.seed,
        chat: c.scoring.chat,
        score: c.scoring.score_options(),
        limit: c.limit,
        max_seq_len: c.max_seq_len,
        progress: true,
    };
    let r = classifier::evaluate(&job, notice).context("evaluation failed")?;
    print_metrics(
        &[
            ("accuracy", json!(r.accuracy)),
            ("macro_f1", json!(r.macro_f1)),
            ("n", json!(r.n)),
        ],
        c.json,
    );
    Ok(())
}

/// Entity-level precision/recall/F1 (overall, and F1 per type) of an encoder tagger.
fn eval_ner(c: &EvalCmd, notice: tasklm_tasks::sft::Notice) -> Result<()> {
    let (scores, n) =
        tasklm_tasks::encoder_ner::evaluate(&c.model, &c.data, c.max_seq_len, c.limit, notice)
            .context("evaluation failed")?;
    let mut m: Vec<(String, Value)> = tasklm_tasks::encoder_ner::metric_list(&scores)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    m.push(("n".into(), json!(n)));
    let refs: Vec<(&str, Value)> = m.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    print_metrics(&refs, c.json);
    Ok(())
}

/// SQuAD v1.1 exact match and F1 of an encoder span head.
fn eval_qa(c: &EvalCmd, notice: tasklm_tasks::sft::Notice) -> Result<()> {
    use tasklm_tasks::encoder_qa::{evaluate, QaSettings};
    let d = QaSettings::default();
    let settings = QaSettings {
        max_len: c.max_seq_len.unwrap_or(d.max_len),
        doc_stride: c.doc_stride.unwrap_or(d.doc_stride),
        ..d
    };
    let (em, f1, n) =
        evaluate(&c.model, &c.data, settings, c.limit, notice).context("evaluation failed")?;
    print_metrics(
        &[
            ("exact_match", json!(em)),
            ("f1", json!(f1)),
            ("n", json!(n)),
        ],
        c.json,
    );
    Ok(())
}

/// A generative task: generate for every record, score with the task's metric.
fn eval_generative(c: &EvalCmd) -> Result<()> {
    use tasklm_tasks::generative::{evaluate, write_predictions, GenEvalOptions};
    let task = c.task.generative().context("a generative task")?;
    let sampling = tasklm_generate::SamplingParams {
        temperature: c.temperature,
        top_k: 0,
        top_p: if c.temperature > 0.0 { c.top_p } else { 1.0 },
        min_p: 0.0,
        seed: c.seed,
        max_new_tokens: c.max_new_tokens.unwrap_or(task.default_max_new_tokens()),
        stop: task.stops(),
        ..tasklm_generate::SamplingParams::default()
    };
    let opts = GenEvalOptions {
        sampling,
        samples: c.samples,
        limit: c.limit,
        batch_size: c.batch_size,
        python: c.python.clone(),
        progress: true,
    };
    let data = c.langs.data(task, &c.data);
    let (metrics, preds) = evaluate(&c.model, &data, &opts).context("evaluation failed")?;
    if let Some(p) = &c.predictions {
        write_predictions(p, &preds)?;
    }
    let mut m: Vec<(&str, Value)> = metrics
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    m.push(("n", json!(preds.len())));
    print_metrics(&m, c.json);
    Ok(())
}
