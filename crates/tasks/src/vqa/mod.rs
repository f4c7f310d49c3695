//! `--task vqa` (family 12): visual question answering with a LLaVA model. Its records and
//! question types ([`data`]), a LLaVA made from a vision encoder and a decoder ([`assemble`]),
//! the training objective and greedy answers ([`objective`]); the model itself is
//! `tasklm_models::vision::llava`.
//!
//! `train --task vqa --model DECODER --vision VISION_DIR` assembles a fresh LLaVA (or
//! `--model LLAVA_DIR` continues one) and trains the projector, plus the decoder with
//! `--train-lm` and the tower with `--train-vision`; the output is a transformers LLaVA
//! directory with `tasklm.json`. `eval` reports exact-match accuracy of the greedy answers
//! (or, with `--labels FILE`, of the likeliest allowed answer), overall and per question type;
//! `predict` answers `{"image", "question"}` with `{"answer", "score"}`.

pub mod assemble;
pub mod data;
pub mod objective;

pub use assemble::{VlmParts, IMAGE_TOKEN};
pub use data::{read_vqa, QuestionType, VqaExample};

use crate::common::lm_runner::train_options;
use crate::common::predictions::PredictionsFile;
use crate::common::provenance::data_entry;
use crate::common::tasklm_json::write_tasklm_json;
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskKind, TrainJob,
};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use objective::{
    candidate_ids, closed_set_answer, encode_example, encode_turns, scored_answer, trainable_llava,
    VqaObjective, VqaStage,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tasklm_data::ImageProcessor;
use tasklm_models::vision::llava::Llava;

/// Tokens an answer may take.
const MAX_ANSWER_TOKENS: usize = 8;

/// What `--task vqa` reads beyond the shared options.
#[derive(Clone, Debug, Default)]
pub struct VqaOptions {
    /// train: the vision encoder a fresh LLaVA starts from (a ViT or CLIP directory).
    pub vision: Option<PathBuf>,
    /// easy-VQA layout: the images folder [default: `images/` beside the questions file].
    pub images: Option<PathBuf>,
    /// train: which parts train beside the projector.
    pub stage: VqaStage,
    /// train: which tower outputs a fresh LLaVA reads.
    pub features: assemble::VisionFeatures,
    /// train: up to this many questions about one image in one training sequence, as turns
    /// (0 or 1: one question per sequence). Each turn sees the image and itself only, unless
    /// `turns_in_view`.
    pub questions_per_image: usize,
    /// train: the turns of one sequence see the earlier turns too (one conversation).
    pub turns_in_view: bool,
    /// eval, predict: a file of the allowed answers, one per line: each question is answered
    /// by the likeliest of them (label scoring) instead of free generation.
    pub labels: Option<PathBuf>,
}

/// The allowed answers in `path`, one per line (blank lines skipped); at least two.
fn read_answers(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| TaskError::File {
        path: path.into(),
        msg: e.to_string(),
    })?;
    let answers: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if answers.len() < 2 {
        return Err(TaskError::File {
            path: path.into(),
            msg: format!(
                "--labels needs at least two answers, one per line; found {}",
                answers.len()
            ),
        });
    }
    Ok(answers)
}

/// The VQA family.
pub struct Vqa;

impl crate::TaskFamily for Vqa {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        train(job, notice)
    }

    fn evaluate(&self, job: &EvalJob, _notice: Notice) -> Result<Report> {
        let m = VqaModel::load(Path::new(&job.model), job.options.vqa.labels.as_deref())?;
        let mut examples = read_vqa(&job.data, job.options.vqa.images.as_deref())?;
        examples.truncate(job.limit.unwrap_or(usize::MAX));
        let started = std::time::Instant::now();
        let mut by_type: BTreeMap<QuestionType, (u64, u64)> = BTreeMap::new();
        let mut answers: BTreeMap<String, u64> = BTreeMap::new();
        let (mut right, mut n) = (0u64, 0u64);
        let mut predictions = job
            .generation
            .predictions
            .as_deref()
            .map(PredictionsFile::create)
            .transpose()?;
        let bar = crate::common::progress::eval_bar(examples.len(), job.progress);
        for ex in &examples {
            let Some(truth) = &ex.answer else {
                return Err(TaskError::File {
                    path: job.data.clone(),
                    msg: format!("the question `{}` has no answer to score", ex.question),
                });
            };
            let (got, score) = m.answer(&ex.image, &ex.question)?;
            bar.inc(1);
            let ok = got.trim().eq_ignore_ascii_case(truth.trim());
            if let Some(f) = predictions.as_mut() {
                f.write(&json!({
                    "image": ex.image,
                    "question": ex.question,
                    "answer": truth,
                    "prediction": got,
                    "score": score,
                    "type": QuestionType::of_answer(truth).name(),
                    "correct": ok,
                }))?;
            }
            let t = by_type.entry(QuestionType::of_answer(truth)).or_default();
            t.0 += u64::from(ok);
            t.1 += 1;
            *answers.entry(truth.trim().to_lowercase()).or_default() += 1;
            right += u64::from(ok);
            n += 1;
        }
        bar.finish_and_clear();
        if let Some(f) = predictions {
            f.finish()?;
        }
        let majority = answers.values().max().copied().unwrap_or(0);
        let mut r = Report::new(job.task)
            .metric("accuracy", right as f64 / n.max(1) as f64)
            .metric("majority_baseline", majority as f64 / n.max(1) as f64)
            .count("n", n)
            .timing("answer_s", started.elapsed().as_secs_f64());
        for (t, (ok, all)) in by_type {
            let key = format!("accuracy_{}", t.name().replace('/', "_"));
            r = r.metric(key, ok as f64 / all.max(1) as f64);
        }
        Ok(r)
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        Ok(Box::new(VqaModel::load(
            Path::new(&job.model),
            job.options.vqa.labels.as_deref(),
        )?))
    }
}

/// A trained LLaVA ready to answer.
pub struct VqaModel {
    model: Llava,
    parts: VlmParts,
    processor: ImageProcessor,
    /// The closed set of answers with their token ids (`--labels`), if given.
    answers: Option<Vec<(String, Vec<u32>)>>,
}

fn processor_of(parts: &VlmParts, dir: &Path) -> Result<ImageProcessor> {
    let json = parts.preprocessor.as_ref().ok_or_else(|| TaskError::File {
        path: dir.to_path_buf(),
        msg: "no preprocessor_config.json: how images are resized and normalised is unknown".into(),
    })?;
    Ok(ImageProcessor::from_json(
        json,
        &dir.join(tasklm_data::PREPROCESSOR_CONFIG),
    )?)
}

impl VqaModel {
    /// Loads a LLaVA directory; with `labels`, answers come from that closed set.
    pub fn load(dir: &Path, labels: Option<&Path>) -> Result<Self> {
        let parts = assemble::load(dir)?;
        let processor = processor_of(&parts, dir)?;
        let vb = VarBuilder::from_tensors(parts.tensors.clone(), DType::F32, &Device::Cpu);
        let model = Llava::new(&parts.config, vb)?;
        let answers = labels
            .map(|p| candidate_ids(&parts.tokenizer, &read_answers(p)?))
            .transpose()?;
        Ok(Self {
            model,
            parts,
            processor,
            answers,
        })
    }

    /// The answer to `question` about `image` (greedy, or the likeliest of the closed set),
    /// with its probability.
    pub fn answer(&self, image: &Path, question: &str) -> Result<(String, f64)> {
        if let Some(answers) = &self.answers {
            return closed_set_answer(
                &self.model,
                &self.parts.tokenizer,
                &self.processor,
                image,
                question,
                answers,
            );
        }
        scored_answer(
            &self.model,
            &self.parts.tokenizer,
            &self.processor,
            image,
            question,
            MAX_ANSWER_TOKENS,
        )
    }
}

impl Predictor for VqaModel {
    fn task(&self) -> TaskKind {
        TaskKind::Vqa
    }

    fn predict_batch(&self, records: &[Value]) -> Vec<Result<Value>> {
        records
            .iter()
            .map(|r| {
                let field = |k: &str| {
                    r.get(k).and_then(Value::as_str).ok_or_else(|| {
                        TaskError::Invalid(format!(
                            "expected a string field `{k}` ({{\"image\": PATH, \"question\": TEXT}})"
                        ))
                    })
                };
                let (image, question) = (field("image")?, field("question")?);
                let (answer, score) = self.answer(Path::new(image), question)?;
                Ok(json!({"answer": answer, "score": score}))
            })
            .collect()
    }
}

fn is_llava_dir(path: &Path) -> bool {
    std::fs::read_to_string(path.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v.get("model_type").and_then(Value::as_str) == Some("llava"))
}

fn train(job: &TrainJob, notice: Notice) -> Result<Report> {
    let o = &job.options.vqa;
    let model_dir = Path::new(&job.model);
    let parts = if is_llava_dir(model_dir) {
        if let Some(v) = &o.vision {
            return Err(TaskError::Invalid(format!(
                "--vision {} builds a fresh LLaVA and --model {} is one already: drop --vision",
                v.display(),
                job.model
            )));
        }
        assemble::load(model_dir)?
    } else {
        let vision = o.vision.as_deref().ok_or_else(|| {
            TaskError::Invalid(format!(
                "--model {} is a decoder: give --vision DIR (a ViT or CLIP vision encoder) to \
                 build a LLaVA from the two, or --model a LLaVA directory",
                job.model
            ))
        })?;
        notice(&format!(
            "a LLaVA from {} and {}: fresh projector, {IMAGE_TOKEN} added to the tokenizer",
            vision.display(),
            job.model
        ));
        assemble::assemble(vision, &job.model, o.features, job.args.seed, job.progress)?
    };
    let processor = processor_of(&parts, model_dir)?;
    let (image_id, n) = (
        parts.config.image_token_index,
        parts.config.tokens_per_image(),
    );
    let encode = |examples: &[VqaExample]| -> Result<Vec<_>> {
        examples
            .iter()
            .map(|e| encode_example(&parts.tokenizer, image_id, n, e))
            .collect()
    };
    let examples = read_vqa(&job.data, o.images.as_deref())?;
    let per_image = o.questions_per_image.clamp(1, objective::MAX_TURNS);
    let train_feats = objective::turns_by_image(&examples, per_image, job.args.seed)
        .iter()
        .map(|turns| {
            let f = encode_turns(&parts.tokenizer, image_id, n, turns)?;
            Ok(if o.turns_in_view {
                f.with_turns_in_view()
            } else {
                f
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let eval_examples = job
        .eval
        .as_deref()
        .map(|p| read_vqa(p, o.images.as_deref()))
        .transpose()?;
    let eval_feats = eval_examples.as_deref().map(encode).transpose()?;
    let t = trainable_llava(&parts, o.stage)?;
    let provenance = json!({
        "task": job.task.name(),
        "base_model": job.model,
        "vision": o.vision,
        "train_lm": o.stage.train_lm,
        "train_vision": o.stage.train_vision,
        "tokens_per_image": n,
        "questions_per_image": per_image,
        "turns_in_view": o.turns_in_view,
        "data": {
            "train": data_entry(&job.data, examples.len())?,
            "eval": match (job.eval.as_deref(), eval_examples.as_deref()) {
                (Some(p), Some(e)) => data_entry(p, e.len())?,
                _ => Value::Null,
            },
        },
        "train_args": job.args,
    });
    let (config_json, tokenizer, preprocessor, text) = (
        parts.config_json.clone(),
        parts.tokenizer.clone(),
        parts.preprocessor.clone(),
        parts.config.text.clone(),
    );
    let files = move |dir: &Path| -> Result<()> {
        let write = |name: &str, v: &Value| -> Result<()> {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
            std::fs::write(&path, text).map_err(|e| TaskError::File {
                path: path.clone(),
                msg: e.to_string(),
            })
        };
        write("config.json", &config_json)?;
        if let Some(p) = &preprocessor {
            write(tasklm_data::PREPROCESSOR_CONFIG, p)?;
        }
        tasklm_hub::write_tokenizer_files(dir, &text, &tokenizer)?;
        write_tasklm_json(dir, &provenance)
    };
    let records = examples.len();
    let obj = VqaObjective {
        model: t.model,
        params: t.params,
        frozen: t.frozen,
        processor,
        train: train_feats,
        eval: eval_feats.unwrap_or_default(),
        pad_id: parts.tokenizer.pad_id(),
        eval_batch_size: job.args.batch_size,
        files: Box::new(files),
    };
    let s = tasklm_train::train(&obj, &job.args, train_options(job))?;
    let mut r = Report::new(job.task)
        .count("steps", s.steps)
        .count("records", records as u64)
        .count("questions", records as u64)
        .count("tokens", s.tokens as u64)
        .count("refused", s.refused)
        .timing("train_s", s.elapsed_s);
    for (k, v) in s.final_eval.iter().flatten() {
        r = r.metric(k.clone(), *v);
    }
    r.losses = s.losses;
    Ok(r)
}
