//! Training a LLaVA on VQA records: the prompt each question becomes, the parameters a stage
//! trains, the loss on the answer tokens only, and greedy answers.
//!
//! Prompt: `<image>` (expanded to one placeholder per image feature), a newline,
//! `Question: {question}\nAnswer:`, then ` {answer}` and the end-of-sequence token, which are
//! the only supervised positions.

use super::assemble::{VlmParts, IMAGE_TOKEN};
use super::data::VqaExample;
use crate::{Result, TaskError};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_data::image::ImageProcessor;
use tasklm_data::IGNORE_INDEX;
use tasklm_models::vision::llava::Llava;
use tasklm_models::DecoderInput;
use tasklm_nn::SHARED_SEGMENT;
use tasklm_text::TextTokenizer;
use tasklm_train::trainer::{LossSum, Metrics, Objective};
use tasklm_train::TrainError;

/// Which parts train; the projector always does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VqaStage {
    /// The decoder trains too (else it stays frozen).
    pub train_lm: bool,
    /// The vision tower trains too.
    pub train_vision: bool,
}

impl VqaStage {
    fn trains(self, name: &str) -> bool {
        name.starts_with("multi_modal_projector.")
            || (self.train_lm && name.starts_with("language_model."))
            || (self.train_vision && name.starts_with("vision_tower."))
    }
}

/// One question (or several, as turns) as token ids with its labels (-100 but on the answers)
/// and its image.
#[derive(Clone, Debug)]
pub struct VqaFeatures {
    pub ids: Vec<u32>,
    pub labels: Vec<i64>,
    /// Each position's segment in the attention mask (see `tasklm_nn::attention_mask`): turns
    /// after the image are segments 1, 2, ... over the image's [`SHARED_SEGMENT`] prefix, so
    /// each turn sees the image and itself only. Empty: one segment, every position sees every
    /// earlier one.
    pub segments: Vec<u8>,
    pub image: PathBuf,
}

impl VqaFeatures {
    /// The same features with every turn seeing the earlier turns too.
    pub fn with_turns_in_view(mut self) -> Self {
        self.segments.clear();
        self
    }

    fn key_mask(&self, len: usize) -> Vec<u8> {
        let mut m = if self.segments.is_empty() {
            vec![1u8; self.ids.len()]
        } else {
            self.segments.clone()
        };
        m.resize(len, 0);
        m
    }
}

/// The prompt's ids for `question` (placeholders expanded to `tokens_per_image`).
pub fn prompt_ids(
    tok: &TextTokenizer,
    image_id: u32,
    tokens_per_image: usize,
    question: &str,
) -> Result<Vec<u32>> {
    let text = format!("{IMAGE_TOKEN}\nQuestion: {}\nAnswer:", question.trim());
    let mut ids = Vec::new();
    for id in tok.encode(&text, false)? {
        if id == image_id {
            ids.extend(std::iter::repeat_n(image_id, tokens_per_image));
        } else {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Encodes `ex` for training: the prompt unsupervised, ` {answer}` and EOS supervised.
pub fn encode_example(
    tok: &TextTokenizer,
    image_id: u32,
    tokens_per_image: usize,
    ex: &VqaExample,
) -> Result<VqaFeatures> {
    encode_turns(tok, image_id, tokens_per_image, std::slice::from_ref(ex))
}

/// Encodes several questions about one image as one sequence of turns: the first turn is
/// [`encode_example`]'s, each next one continues with `\nQuestion: {question}\nAnswer:`
/// (unsupervised) and ` {answer}` and EOS (supervised). The image's placeholders are paid for
/// once instead of once per question. Each turn is its own segment after the image (see
/// [`VqaFeatures::segments`]): it sees the image and itself only, at the positions it would
/// have asked alone, so the loss is the sum of the questions' losses asked one by one, and no
/// answer can be read from an earlier turn (evaluation asks one question at a time).
/// [`VqaFeatures::with_turns_in_view`] makes them one conversation instead, as LLaVA's
/// multi-turn data is.
pub fn encode_turns(
    tok: &TextTokenizer,
    image_id: u32,
    tokens_per_image: usize,
    turns: &[VqaExample],
) -> Result<VqaFeatures> {
    let Some(first) = turns.first() else {
        return Err(TaskError::Invalid("no question to encode".into()));
    };
    let mut ids = prompt_ids(tok, image_id, tokens_per_image, &first.question)?;
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    let prefix = ids
        .iter()
        .rposition(|&t| t == image_id)
        .map_or(0, |i| i + 1);
    if turns.len() > MAX_TURNS {
        return Err(TaskError::Invalid(format!(
            "{} questions about {} in one sequence: at most {MAX_TURNS}",
            turns.len(),
            first.image.display()
        )));
    }
    let mut segments = vec![SHARED_SEGMENT; prefix];
    segments.resize(ids.len(), 1);
    for (i, ex) in turns.iter().enumerate() {
        if ex.image != first.image {
            return Err(TaskError::Invalid(format!(
                "one sequence of turns has two images: {} and {}",
                first.image.display(),
                ex.image.display()
            )));
        }
        if i > 0 {
            let prompt = tok.encode(
                &format!("\nQuestion: {}\nAnswer:", ex.question.trim()),
                false,
            )?;
            labels.extend(std::iter::repeat_n(IGNORE_INDEX, prompt.len()));
            ids.extend(prompt);
        }
        let answer = ex.answer.as_deref().ok_or_else(|| TaskError::File {
            path: ex.image.clone(),
            msg: format!("the question `{}` has no answer to train on", ex.question),
        })?;
        let mut answer_ids = tok.encode(&format!(" {}", answer.trim()), false)?;
        answer_ids.extend(tok.eos_ids.first().copied());
        labels.extend(answer_ids.iter().map(|&t| i64::from(t)));
        ids.extend(answer_ids);
        // Turn i is segment i + 1 (u8: MAX_TURNS keeps it below SHARED_SEGMENT).
        segments.resize(ids.len(), (i + 1) as u8);
    }
    Ok(VqaFeatures {
        ids,
        labels,
        segments,
        image: first.image.clone(),
    })
}

/// Most questions [`encode_turns`] puts in one sequence (segment ids are bytes).
pub const MAX_TURNS: usize = SHARED_SEGMENT as usize - 1;

/// `examples` grouped by image (in the order each image first appears), each image's
/// questions shuffled (from `seed`: datasets list an image's questions in a fixed order, shape
/// first, colour next, which would make every first turn the same kind of question and let
/// later turns read their answer from the earlier ones in the same order every time) and cut
/// into runs of at most `per_image` (at least 1). With `per_image` 1, the file's order.
pub fn turns_by_image(
    examples: &[VqaExample],
    per_image: usize,
    seed: u64,
) -> Vec<Vec<VqaExample>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    if per_image <= 1 {
        return examples.iter().map(|e| vec![e.clone()]).collect();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut order: Vec<&Path> = Vec::new();
    let mut by_image: HashMap<&Path, Vec<VqaExample>> = HashMap::new();
    for ex in examples {
        let list = by_image.entry(ex.image.as_path()).or_default();
        if list.is_empty() {
            order.push(ex.image.as_path());
        }
        list.push(ex.clone());
    }
    let mut out = Vec::new();
    for image in order {
        let mut list = by_image.remove(image).unwrap_or_default();
        list.shuffle(&mut rng);
        out.extend(list.chunks(per_image).map(<[VqaExample]>::to_vec));
    }
    out
}

/// The answer among `answers` (each a candidate's ids: ` {answer}` and EOS) most likely
/// after the prompt for `question` about `image`, and its probability, scored as decoder label
/// scoring does: one prefill of the prompt with the image, each candidate from a copy of its
/// cache.
pub fn closed_set_answer(
    model: &Llava,
    tok: &TextTokenizer,
    processor: &ImageProcessor,
    image: &Path,
    question: &str,
    answers: &[(String, Vec<u32>)],
) -> Result<(String, f64)> {
    let cfg = model.config();
    let ids = prompt_ids(tok, cfg.image_token_index, cfg.tokens_per_image(), question)?;
    let feats = model.image_features(&pixels(processor, &[image])?, false)?;
    let input = DecoderInput::from_rows(std::slice::from_ref(&ids), &Device::Cpu)?;
    let input = model.splice(input, &[feats.get(0)?])?;
    let candidates: Vec<Vec<u32>> = answers.iter().map(|a| a.1.clone()).collect();
    let lp = tasklm_generate::label_logprobs_input(
        model.language_model(),
        input,
        &candidates,
        tasklm_generate::LabelNorm::Sum,
    )?;
    let (best, score) =
        lp.iter().enumerate().fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        );
    let answer = answers
        .get(best)
        .map(|a| a.0.clone())
        .ok_or_else(|| TaskError::Invalid("no candidate answers".into()))?;
    Ok((answer, score.exp()))
}

/// The token ids each candidate answer is scored by: ` {answer}` and EOS.
pub fn candidate_ids(tok: &TextTokenizer, answers: &[String]) -> Result<Vec<(String, Vec<u32>)>> {
    answers
        .iter()
        .map(|a| {
            let mut ids = tok.encode(&format!(" {}", a.trim()), false)?;
            ids.extend(tok.eos_ids.first().copied());
            Ok((a.trim().to_string(), ids))
        })
        .collect()
}

/// A LLaVA with the tensors a stage trains as variables.
pub struct TrainableLlava {
    pub model: Llava,
    /// The variables, sorted by name.
    pub params: Vec<(String, Var)>,
    /// The other tensors, under their names.
    pub frozen: HashMap<String, Tensor>,
}

/// Builds the LLaVA of `parts` with the tensors `stage` trains as variables.
pub fn trainable_llava(parts: &VlmParts, stage: VqaStage) -> Result<TrainableLlava> {
    let mut params = Vec::new();
    let mut frozen = HashMap::new();
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &parts.tensors {
        if stage.trains(name) {
            let v = Var::from_tensor(&t.to_dtype(DType::F32)?)?;
            map.insert(name.clone(), v.as_tensor().clone());
            params.push((name.clone(), v));
        } else {
            map.insert(name.clone(), t.detach());
            frozen.insert(name.clone(), t.detach());
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    Ok(TrainableLlava {
        model: Llava::new(&parts.config, vb)?,
        params,
        frozen,
    })
}

/// Pixel values (B, 3, S, S) of `images`.
fn pixels(processor: &ImageProcessor, images: &[&Path]) -> Result<Tensor> {
    let each: Vec<Tensor> = images
        .iter()
        .map(|p| processor.process_file(p))
        .collect::<std::result::Result<_, _>>()?;
    Ok(Tensor::stack(&each, 0)?)
}

/// The summed answer loss of `rows`, its scored positions and tokens.
pub fn vqa_loss(
    model: &Llava,
    processor: &ImageProcessor,
    rows: &[&VqaFeatures],
    pad_id: u32,
    train: bool,
) -> Result<(Tensor, usize, usize)> {
    let t = rows.iter().map(|r| r.ids.len()).max().unwrap_or(1);
    let (mut ids, mut labels, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let pad = t - r.ids.len();
        ids.extend(
            r.ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(pad_id, pad)),
        );
        labels.extend(
            r.labels
                .iter()
                .copied()
                .chain(std::iter::repeat_n(IGNORE_INDEX, pad)),
        );
        mask.push(r.key_mask(t));
    }
    let b = rows.len();
    let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu)?;
    let labels = Tensor::from_vec(labels, (b, t), &Device::Cpu)?;
    let images: Vec<&Path> = rows.iter().map(|r| r.image.as_path()).collect();
    let feats = model.image_features(&pixels(processor, &images)?, train)?;
    let per_image: Vec<Tensor> = (0..b)
        .map(|i| feats.get(i))
        .collect::<candle_core::Result<_>>()?;
    let input = model.splice(DecoderInput::new(ids, mask), &per_image)?;
    let (sum, n) = tasklm_train::input_lm_loss(model.language_model(), &input, &labels, train)?;
    let tokens = rows.iter().map(|r| r.ids.len()).sum();
    Ok((sum, n, tokens))
}

/// The greedy answer to `question` about `image`: at most `max_new` tokens, up to EOS or a
/// newline.
pub fn greedy_answer(
    model: &Llava,
    tok: &TextTokenizer,
    processor: &ImageProcessor,
    image: &Path,
    question: &str,
    max_new: usize,
) -> Result<String> {
    Ok(scored_answer(model, tok, processor, image, question, max_new)?.0)
}

/// [`greedy_answer`] with its probability: the product of each chosen token's softmax
/// probability, the end (EOS or newline) included when reached.
pub fn scored_answer(
    model: &Llava,
    tok: &TextTokenizer,
    processor: &ImageProcessor,
    image: &Path,
    question: &str,
    max_new: usize,
) -> Result<(String, f64)> {
    let cfg = model.config();
    let mut ids = prompt_ids(tok, cfg.image_token_index, cfg.tokens_per_image(), question)?;
    let feats = model.image_features(&pixels(processor, &[image])?, false)?;
    let image_feats = [feats.get(0)?];
    let mut out = Vec::new();
    let mut log_p = 0f64;
    // The prompt with its image runs once; each new token then runs alone over the cache.
    let lm = model.language_model();
    let mut cache = lm.new_cache();
    let input = DecoderInput::from_rows(std::slice::from_ref(&ids), &Device::Cpu)?;
    let mut logits = lm.last_logits(&model.splice(input, &image_feats)?, Some(&mut cache))?;
    for _ in 0..max_new {
        let logp = candle_nn::ops::log_softmax(&logits.squeeze(0)?, 0)?.to_vec1::<f32>()?;
        let (next, lp) =
            logp.iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                });
        log_p += f64::from(lp);
        let next = next as u32;
        if tok.is_eos(next) {
            break;
        }
        out.push(next);
        let text = tok.decode(&out, true)?;
        if text.contains('\n') {
            let answer = text
                .split('\n')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            return Ok((answer, log_p.exp()));
        }
        ids.push(next);
        let step = DecoderInput::new(
            Tensor::from_vec(vec![next], (1, 1), &Device::Cpu)?,
            vec![vec![1u8; ids.len()]],
        );
        logits = lm.last_logits(&step, Some(&mut cache))?;
    }
    Ok((tok.decode(&out, true)?.trim().to_string(), log_p.exp()))
}

/// Writes the files beside the weights (config, tokenizer, preprocessor config).
pub type FilesWriter = Box<dyn Fn(&std::path::Path) -> Result<()>>;

/// A LLaVA trained on VQA features as the trainer's objective.
pub struct VqaObjective {
    pub model: Llava,
    pub params: Vec<(String, Var)>,
    pub processor: ImageProcessor,
    pub train: Vec<VqaFeatures>,
    pub eval: Vec<VqaFeatures>,
    pub pad_id: u32,
    pub eval_batch_size: usize,
    /// The tensors that do not train, written beside the trained ones so that the directory
    /// holds the whole model (the trainer writes only the variables).
    pub frozen: HashMap<String, Tensor>,
    /// Writes config, tokenizer and preprocessor files beside the weights.
    pub files: FilesWriter,
}

impl Objective for VqaObjective {
    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn train_lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.iter().map(|f| f.ids.len()).collect())
    }

    fn train_loss(&self, indices: &[usize]) -> tasklm_train::Result<LossSum> {
        let rows: Vec<&VqaFeatures> = indices.iter().filter_map(|&i| self.train.get(i)).collect();
        let (sum, scored, tokens) =
            vqa_loss(&self.model, &self.processor, &rows, self.pad_id, true)
                .map_err(TrainError::objective)?;
        Ok(LossSum {
            sum,
            scored,
            tokens,
        })
    }

    fn evaluate(&self) -> tasklm_train::Result<Option<Metrics>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut n) = (0f64, 0usize);
        for chunk in self.eval.chunks(self.eval_batch_size.max(1)) {
            let rows: Vec<&VqaFeatures> = chunk.iter().collect();
            let (s, k, _) = vqa_loss(&self.model, &self.processor, &rows, self.pad_id, false)
                .map_err(TrainError::objective)?;
            sum += s.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            n += k;
        }
        let loss = if n > 0 { sum / n as f64 } else { f64::NAN };
        Ok(Some(vec![
            ("loss".into(), loss),
            ("perplexity".into(), loss.exp()),
        ]))
    }

    fn write_files(&self, dir: &std::path::Path) -> tasklm_train::Result<()> {
        if !self.frozen.is_empty() {
            let mut all = self.frozen.clone();
            for (name, v) in &self.params {
                all.insert(name.clone(), v.as_tensor().detach());
            }
            let path = dir.join("model.safetensors");
            candle_core::safetensors::save(&all, &path)
                .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
        }
        (self.files)(dir).map_err(TrainError::objective)
    }
}
