//! `tasklm train`: fine-tune a model for a task on the shared trainer.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tasklm_data::Truncation;
use tasklm_tasks::{chat, sft};
use tasklm_train::{ScheduleKind, TrainArgs};

/// The task families `train` and `eval` know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// Instruction SFT on {prompt, completion} (or Alpaca) JSONL; loss on completions.
    Sft,
    /// Conversations ({"messages": [{role, content}, ...]} JSONL); loss on assistant turns.
    Chat,
    /// Text classification ({"text", "label"} JSONL or sentence/label TSV): an encoder's
    /// classification head, or a decoder completing a label word.
    Classify,
    /// NLI ({"premise", "hypothesis", "label"} JSONL): an encoder's head over
    /// [CLS] premise [SEP] hypothesis [SEP], or a decoder completing a label word.
    Nli,
    /// NER (CoNLL columns or {"tokens", "ner_tags"} JSONL): an encoder tags each word (BIO).
    Ner,
    /// Extractive QA (SQuAD v1.1 JSON or {"context", "question", "answers"} JSONL): an
    /// encoder's start/end span head.
    Qa,
    /// Generative QA (SQuAD JSON or {question, answer[, context]} JSONL): SFT on the answer.
    Genqa,
    /// Summarization ({dialogue|document, summary} JSONL): SFT on the summary; ROUGE.
    Summarize,
    /// Translation (PREFIX.SRC[.gz]/PREFIX.TGT[.gz] lines or {source, target} JSONL); BLEU, chrF.
    Translate,
    /// Code (HumanEval/MBXP layout): SFT on the solution; pass@k by running the tests.
    Code,
    /// Chain-of-thought reasoning (GSM8K {question, answer}): SFT on the worked answer.
    Reasoning,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Sft => "sft",
            Task::Chat => "chat",
            Task::Classify => "classify",
            Task::Nli => "nli",
            Task::Ner => "ner",
            Task::Qa => "qa",
            Task::Genqa => "genqa",
            Task::Summarize => "summarize",
            Task::Translate => "translate",
            Task::Code => "code",
            Task::Reasoning => "reasoning",
        }
    }

    /// The generative task this is, if any.
    pub fn generative(self) -> Option<tasklm_tasks::generative::GenTask> {
        tasklm_tasks::generative::GenTask::from_name(self.name())
    }
}

/// Translation languages: the suffixes of the line-aligned files.
#[derive(Args, Clone, Debug, Default)]
pub struct LangFlags {
    /// translate: source language code (reads PREFIX.SRC[.gz]).
    #[arg(long)]
    pub src_lang: Option<String>,
    /// translate: target language code (reads PREFIX.TGT[.gz]).
    #[arg(long)]
    pub tgt_lang: Option<String>,
}

impl LangFlags {
    /// The data of a generative task at `path`.
    pub fn data(
        &self,
        task: tasklm_tasks::generative::GenTask,
        path: &std::path::Path,
    ) -> tasklm_tasks::generative::GenData {
        tasklm_tasks::generative::GenData {
            task,
            path: path.to_path_buf(),
            langs: self.src_lang.clone().zip(self.tgt_lang.clone()),
        }
    }
}

/// How a record becomes a prompt for a decoder classifier (classify, nli).
#[derive(Args, Clone, Debug, Default)]
pub struct LabelPromptFlags {
    /// Prompt with {text} (classify) or {premise} and {hypothesis} (nli)
    /// [default: "Review: {text} Sentiment:" / the NLI instruction].
    #[arg(long)]
    pub prompt_template: Option<String>,
    /// Comma-separated label words, one per label in sorted order (NLI: entailment, neutral,
    /// contradiction) [default: negative,positive for 0/1 labels, else the label names].
    #[arg(long)]
    pub label_words: Option<String>,
}

/// How a decoder classifier scores labels (eval and predict of classify, nli).
#[derive(Args, Clone, Debug, Default)]
pub struct LabelScoreFlags {
    /// classify/nli: subtract each label's log-probability for a content-free input
    /// (contextual calibration).
    #[arg(long)]
    pub calibrate: bool,
    /// classify/nli: average a label's log-probability over its tokens instead of summing.
    #[arg(long)]
    pub length_norm: bool,
    /// classify/nli: wrap the prompt in the model's chat template as a user turn.
    #[arg(long)]
    pub chat: bool,
}

impl LabelScoreFlags {
    pub fn score_options(&self) -> tasklm_tasks::label_task::ScoreOptions {
        tasklm_tasks::label_task::ScoreOptions {
            calibrate: self.calibrate,
            norm: if self.length_norm {
                tasklm_generate::LabelNorm::Mean
            } else {
                tasklm_generate::LabelNorm::Sum
            },
        }
    }
}

impl LabelPromptFlags {
    pub fn overrides(&self) -> tasklm_tasks::label_task::PromptOverrides {
        tasklm_tasks::label_task::PromptOverrides {
            template: self.prompt_template.clone(),
            words: self.label_words.clone(),
        }
    }
}

/// What to do with a record longer than --max-seq-len.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TruncationArg {
    /// Cut the start of the prompt.
    Left,
    /// Skip the record.
    Drop,
}

impl From<TruncationArg> for Truncation {
    fn from(t: TruncationArg) -> Self {
        match t {
            TruncationArg::Left => Truncation::Left,
            TruncationArg::Drop => Truncation::Drop,
        }
    }
}

/// The trainer settings every task shares; each overrides the same key of --config.
#[derive(Args, Clone, Debug, Default)]
pub struct TrainerFlags {
    /// TOML recipe with any of the keys below (snake_case: grad_accum = 4); flags win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Passes over the training data [default: 1].
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Optimizer updates to take; overrides --epochs.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Examples per micro-batch [default: 8].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per update [default: 1].
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Peak learning rate [default: 2e-5].
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW weight decay, not applied to norms and biases [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Fraction of updates warming the learning rate up [default: 0].
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// Decay after warmup: constant, linear or cosine [default: linear].
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Gradient-norm clip, 0 = off [default: 1].
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Seed of the data order [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Batch records of similar length together (less padding) [default: true].
    #[arg(long)]
    pub group_by_length: Option<bool>,
    /// Evaluate every N updates (and at the end); 0 = only at the end [default: 0].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Checkpoint every N updates (and at the end) [default: 500].
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Checkpoints kept [default: 2].
    #[arg(long)]
    pub save_total_limit: Option<usize>,
}

impl TrainerFlags {
    /// The recipe (or the defaults) with the flags given applied over it.
    pub fn resolve(&self) -> Result<TrainArgs> {
        let mut a = match &self.config {
            Some(p) => TrainArgs::from_toml(p)?,
            None => TrainArgs::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { a.$f = v; } )* };
        }
        over!(
            epochs,
            batch_size,
            grad_accum,
            lr,
            weight_decay,
            warmup_ratio
        );
        over!(
            max_grad_norm,
            seed,
            eval_every,
            save_every,
            save_total_limit
        );
        if self.max_steps.is_some() {
            a.max_steps = self.max_steps;
        }
        if let Some(s) = &self.scheduler {
            a.scheduler = s.parse::<ScheduleKind>()?;
        }
        a.validate()?;
        Ok(a)
    }
}

#[derive(Args, Clone, Debug)]
pub struct TrainCmd {
    #[arg(long, value_enum)]
    pub task: Task,
    /// Base model: a catalog name, a Hugging Face directory, a .gguf file or a hub id.
    #[arg(long)]
    pub model: String,
    /// Training data (JSONL).
    #[arg(long)]
    pub data: PathBuf,
    /// Evaluation data (JSONL), scored every --eval-every updates and at the end.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Output directory: checkpoints, metrics.jsonl, and the trained model.
    #[arg(long)]
    pub out: PathBuf,
    /// Longest sequence in tokens [default: the model's context window or 2048, the smaller].
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Records longer than --max-seq-len lose the start of their prompt, or are dropped.
    #[arg(long, value_enum, default_value = "left")]
    pub truncation: TruncationArg,
    /// Pack several records into each sequence (they do not attend to each other; sft).
    #[arg(long)]
    pub pack: bool,
    /// Chat template (chat): llama2 or chatml [default: the model's own]. Saved with the model.
    #[arg(long)]
    pub template: Option<String>,
    /// Continue from the newest complete checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// qa: tokens shared by consecutive windows of a long context.
    #[arg(long, default_value_t = 128)]
    pub doc_stride: usize,
    #[command(flatten)]
    pub langs: LangFlags,
    #[command(flatten)]
    pub label: LabelPromptFlags,
    #[command(flatten)]
    pub trainer: TrainerFlags,
}

pub fn run(c: TrainCmd) -> Result<()> {
    let args = c.trainer.resolve()?;
    if c.template.is_some() && c.task != Task::Chat {
        anyhow::bail!("--template applies to --task chat");
    }
    if c.pack && c.task != Task::Sft {
        anyhow::bail!("--pack applies to --task sft");
    }
    let label_task = matches!(c.task, Task::Classify | Task::Nli);
    if !label_task && (c.label.prompt_template.is_some() || c.label.label_words.is_some()) {
        anyhow::bail!("--prompt-template and --label-words apply to --task classify and nli");
    }
    let notice = |m: &str| eprintln!("{m}");
    // Ctrl-C finishes the current update and writes a checkpoint; a second one quits at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this update (Ctrl-C again quits without a checkpoint)");
    });
    let report = match c.task {
        Task::Sft
        | Task::Classify
        | Task::Nli
        | Task::Ner
        | Task::Qa
        | Task::Genqa
        | Task::Summarize
        | Task::Translate
        | Task::Code
        | Task::Reasoning => {
            let job = sft::SftJob {
                model: c.model,
                data: c.data.clone(),
                eval: c.eval.clone(),
                out: c.out.clone(),
                max_seq_len: c.max_seq_len,
                truncation: c.truncation.into(),
                pack: c.pack,
                args,
                resume: c.resume,
                progress: true,
                stop: Some(stop.clone()),
            };
            if let Some(g) = c.task.generative() {
                let data = c.langs.data(g, &c.data);
                let eval = c.eval.as_ref().map(|p| c.langs.data(g, p));
                tasklm_tasks::generative::train(&data, eval.as_ref(), &job, &notice)
            } else if c.task == Task::Ner {
                tasklm_tasks::encoder_ner::train(&job, &notice)
            } else if c.task == Task::Qa {
                tasklm_tasks::encoder_qa::train(&job, c.doc_stride, &notice)
            } else if label_task {
                tasklm_tasks::classifier::train(c.task.name(), &job, &c.label.overrides(), &notice)
            } else {
                sft::train(&job, &notice)
            }
            .context("training failed")?
        }
        Task::Chat => {
            let job = chat::ChatJob {
                model: c.model,
                data: c.data.clone(),
                eval: c.eval.clone(),
                out: c.out.clone(),
                template: c.template,
                max_seq_len: c.max_seq_len,
                truncation: c.truncation.into(),
                args,
                resume: c.resume,
                progress: true,
                stop: Some(stop.clone()),
            };
            chat::train(&job, &notice).context("training failed")?
        }
    };
    let s = &report.summary;
    eprintln!(
        "trained {} updates on {} records ({} sequences of at most {} tokens) in {:.1} s, {:.0} tokens/s{}",
        s.steps,
        report.train.kept,
        report.sequences,
        report.max_seq_len,
        s.elapsed_s,
        s.tokens as f64 / s.elapsed_s.max(1e-9),
        if s.refused > 0 { format!(", {} updates refused (NaN/Inf)", s.refused) } else { String::new() }
    );
    if let Some(m) = &s.final_eval {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        eprintln!("eval: {}", parts.join(", "));
    }
    eprintln!("model written to {}", c.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_recipe_and_the_recipe_over_defaults() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("tasklm-recipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let recipe = dir.join("recipe.toml");
        std::fs::write(
            &recipe,
            "lr = 1e-4\ngrad_accum = 4\nscheduler = \"cosine\"\ngroup_by_length = false\n",
        )?;
        let flags = TrainerFlags {
            config: Some(recipe),
            lr: Some(3e-5),
            batch_size: Some(2),
            ..TrainerFlags::default()
        };
        let a = flags.resolve()?;
        assert_eq!(a.lr, 3e-5, "the flag wins");
        assert_eq!(a.grad_accum, 4, "the recipe sets what no flag does");
        assert_eq!(a.scheduler, ScheduleKind::Cosine);
        assert!(!a.group_by_length);
        assert_eq!(a.batch_size, 2);
        assert_eq!(a.seed, TrainArgs::default().seed, "defaults fill the rest");
        Ok(())
    }
}
