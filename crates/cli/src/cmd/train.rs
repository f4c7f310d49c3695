//! `tasklm train`: fine-tune a model for a task on the shared trainer.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tasklm_data::Truncation;
use tasklm_tasks::{TaskKind, TaskOptions, TrainJob};
use tasklm_train::{ScheduleKind, TrainArgs};

/// `--task NAME`, parsed once by the task contract (its error lists every valid name).
pub fn parse_task(s: &str) -> std::result::Result<TaskKind, String> {
    s.parse::<TaskKind>().map_err(|e| e.to_string())
}

/// The help of `--task`.
pub fn task_help() -> String {
    format!("Task: {}", TaskKind::names())
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
    /// The (source, target) pair, when both are given.
    pub fn pair(&self) -> Option<(String, String)> {
        self.src_lang.clone().zip(self.tgt_lang.clone())
    }
}

/// A fresh encoder-decoder (translate, summarize) and its loss.
#[derive(Args, Clone, Debug, Default)]
pub struct Seq2SeqFlags {
    /// translate/summarize: train a fresh encoder-decoder of this architecture (t5, bart,
    /// marian) instead of fine-tuning --model; needs --tokenizer.
    #[arg(long)]
    pub arch: Option<String>,
    /// With --arch: TOML of config.json keys over the arch's defaults (d_model = 256, ...).
    #[arg(long, requires = "arch")]
    pub model_config: Option<PathBuf>,
    /// With --arch: the tokenizer directory (tokenizer.json), e.g. from `tasklm tokenizer train`.
    #[arg(long, requires = "arch")]
    pub tokenizer: Option<PathBuf>,
    /// Label smoothing of an encoder-decoder's loss (as transformers' label_smoothing_factor)
    /// [default: 0].
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Encoder-decoder: score each evaluation by greedy generation (sacreBLEU and chrF for
    /// translate, ROUGE for summarize), as transformers' predict_with_generate.
    #[arg(long)]
    pub predict_with_generate: bool,
}

impl Seq2SeqFlags {
    pub fn options(&self) -> tasklm_tasks::seq2seq::Seq2SeqOptions {
        tasklm_tasks::seq2seq::Seq2SeqOptions {
            arch: self.arch.clone(),
            model_config: self.model_config.clone(),
            tokenizer: self.tokenizer.clone(),
            label_smoothing: self.label_smoothing,
            predict_with_generate: self.predict_with_generate,
        }
    }
}

/// Visual question answering: the parts of a fresh LLaVA and what trains.
#[derive(Args, Clone, Debug, Default)]
pub struct VqaFlags {
    /// vqa: the vision encoder (a ViT or CLIP directory, e.g. from --task image-classify)
    /// that a LLaVA is built from with --model's decoder and a fresh projector.
    #[arg(long)]
    pub vision: Option<PathBuf>,
    /// vqa, easy-VQA layout: the images folder [default: images/ beside the questions file].
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// vqa: train the decoder too (else only the projector trains).
    #[arg(long)]
    pub train_lm: bool,
    /// vqa: train the vision tower too.
    #[arg(long)]
    pub train_vision: bool,
    /// vqa, a fresh LLaVA: the tower's hidden state the projector reads (transformers'
    /// vision_feature_layer; 0 is the embeddings, -1 the last layer's output).
    #[arg(long, default_value_t = -2, allow_hyphen_values = true)]
    pub vision_feature_layer: i64,
    /// vqa, a fresh LLaVA: `default` drops the tower's [CLS] feature, `full` keeps it
    /// (transformers' vision_feature_select_strategy).
    #[arg(long, default_value = "default", value_parser = ["default", "full"])]
    pub vision_feature_select: String,
    /// vqa: up to this many questions about one image in one training sequence, as turns
    /// (`Question: .. Answer: ..` after the image, loss on every answer), so an image's
    /// placeholder tokens are paid for once; each turn sees the image and itself only, as
    /// evaluation asks one question at a time (at most 254).
    #[arg(long, default_value_t = 1)]
    pub questions_per_image: usize,
    /// vqa: the turns of one sequence see the earlier turns too, as one conversation (LLaVA's
    /// multi-turn data); later answers can then be read from earlier ones.
    #[arg(long)]
    pub turns_see_earlier: bool,
}

impl VqaFlags {
    pub fn options(&self) -> tasklm_tasks::vqa::VqaOptions {
        tasklm_tasks::vqa::VqaOptions {
            vision: self.vision.clone(),
            images: self.images.clone(),
            stage: tasklm_tasks::vqa::objective::VqaStage {
                train_lm: self.train_lm,
                train_vision: self.train_vision,
            },
            features: tasklm_tasks::vqa::assemble::VisionFeatures {
                layer: self.vision_feature_layer,
                keep_cls: self.vision_feature_select == "full",
            },
            questions_per_image: self.questions_per_image,
            turns_in_view: self.turns_see_earlier,
            labels: None,
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
    pub fn score_options(&self) -> tasklm_tasks::classify::ScoreOptions {
        tasklm_tasks::classify::ScoreOptions {
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
    pub fn overrides(&self) -> tasklm_tasks::classify::PromptOverrides {
        tasklm_tasks::classify::PromptOverrides {
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
    /// Keep the model of the evaluation with the best value of this metric (bleu, rougeL,
    /// loss, ...) in OUT/best and make it the final model (needs --eval).
    #[arg(long)]
    pub metric_for_best_model: Option<String>,
    /// Whether a higher --metric-for-best-model is better [default: true, false for *loss and
    /// perplexity].
    #[arg(long)]
    pub greater_is_better: Option<bool>,
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
            group_by_length,
            eval_every,
            save_every,
            save_total_limit
        );
        if self.max_steps.is_some() {
            a.max_steps = self.max_steps;
        }
        if self.metric_for_best_model.is_some() {
            a.metric_for_best_model = self.metric_for_best_model.clone();
        }
        if self.greater_is_better.is_some() {
            a.greater_is_better = self.greater_is_better;
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
    #[arg(long, value_parser = parse_task, help = task_help())]
    pub task: TaskKind,
    /// Base model: a catalog name, a Hugging Face directory, a .gguf file or a hub id
    /// (not with --arch, which trains a fresh encoder-decoder).
    #[arg(long, required_unless_present = "arch")]
    pub model: Option<String>,
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
    /// qa: tokens shared by consecutive windows of a long context [default: 128].
    #[arg(long)]
    pub doc_stride: Option<usize>,
    #[command(flatten)]
    pub langs: LangFlags,
    #[command(flatten)]
    pub label: LabelPromptFlags,
    #[command(flatten)]
    pub trainer: TrainerFlags,
    #[command(flatten)]
    pub lora: super::lora::LoraFlags,
    #[command(flatten)]
    pub seq2seq: Seq2SeqFlags,
    #[command(flatten)]
    pub vqa: VqaFlags,
    /// Print the run's report (final eval metrics, counts) as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: TrainCmd) -> Result<()> {
    let args = c.trainer.resolve()?;
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
    let job = TrainJob {
        task: c.task,
        model: c.model.unwrap_or_default(),
        data: c.data,
        eval: c.eval,
        out: c.out.clone(),
        max_seq_len: c.max_seq_len,
        truncation: c.truncation.into(),
        args,
        resume: c.resume,
        progress: true,
        stop: Some(stop),
        options: TaskOptions {
            pack: c.pack,
            template: c.template,
            prompt: c.label.overrides(),
            doc_stride: c.doc_stride,
            langs: c.langs.pair(),
            lora: c.lora.settings()?,
            seq2seq: c.seq2seq.options(),
            vqa: c.vqa.options(),
            ..TaskOptions::default()
        },
    };
    let r = tasklm_tasks::train(&job, &notice).context("training failed")?;
    let refused = r.count_of("refused");
    let refused = if refused > 0 {
        format!(", {refused} updates refused (NaN/Inf)")
    } else {
        String::new()
    };
    let train_s = r.timing_of("train_s");
    if r.count_of("images") > 0 {
        // An image task counts images seen, not tokens.
        eprintln!(
            "trained {} updates on {} images in {train_s:.1} s, {:.1} images/s{refused}",
            r.count_of("steps"),
            r.count_of("records"),
            r.count_of("images") as f64 / train_s.max(1e-9),
        );
    } else if r.count_of("questions") > 0 {
        // VQA: every question is one sequence; its tokens count the image placeholders.
        eprintln!(
            "trained {} updates on {} questions in {train_s:.1} s, {:.0} tokens/s (image and text){refused}",
            r.count_of("steps"),
            r.count_of("questions"),
            r.count_of("tokens") as f64 / train_s.max(1e-9),
        );
    } else {
        eprintln!(
            "trained {} updates on {} records ({} sequences of at most {} tokens) in {train_s:.1} s, {:.0} tokens/s{refused}",
            r.count_of("steps"),
            r.count_of("kept"),
            r.count_of("sequences"),
            r.count_of("max_seq_len"),
            r.count_of("tokens") as f64 / train_s.max(1e-9),
        );
    }
    if !r.metrics.is_empty() {
        let parts: Vec<String> = r
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        eprintln!("eval: {}", parts.join(", "));
    }
    eprintln!("model written to {}", c.out.display());
    if c.json {
        println!("{}", r.to_json());
    }
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

    /// A value unlike the default for each trainer flag; a flag missing here fails the test
    /// below, so a new flag cannot be added without checking that it arrives.
    fn non_default(flag: &str) -> Option<&'static str> {
        Some(match flag {
            "epochs" => "3",
            "max_steps" => "7",
            "batch_size" => "5",
            "grad_accum" => "2",
            "lr" => "0.001",
            "weight_decay" => "0.1",
            "warmup_ratio" => "0.25",
            "scheduler" => "cosine",
            "max_grad_norm" => "0.5",
            "seed" => "9",
            "group_by_length" => "false",
            "eval_every" => "11",
            "save_every" => "13",
            "save_total_limit" => "4",
            "metric_for_best_model" => "bleu",
            "greater_is_better" => "false",
            _ => return None,
        })
    }

    #[test]
    fn every_trainer_flag_reaches_train_args() -> Result<()> {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Probe {
            #[command(flatten)]
            trainer: TrainerFlags,
        }
        let mut argv = vec!["probe".to_string()];
        let mut names = Vec::new();
        for a in Probe::command().get_arguments() {
            let id = a.get_id().as_str().to_string();
            if id == "config" || a.get_long().is_none() {
                continue;
            }
            let v = non_default(&id)
                .with_context(|| format!("no test value for trainer flag --{id}"))?;
            argv.push(format!("--{}", a.get_long().unwrap_or_default()));
            argv.push(v.to_string());
            names.push(id);
        }
        assert!(names.len() >= 14, "flags found: {names:?}");
        let resolved = serde_json::to_value(Probe::try_parse_from(&argv)?.trainer.resolve()?)?;
        let default = serde_json::to_value(TrainArgs::default())?;
        for n in &names {
            assert_ne!(
                resolved.get(n),
                default.get(n),
                "--{n} did not reach TrainArgs ({argv:?})"
            );
        }
        Ok(())
    }
}
