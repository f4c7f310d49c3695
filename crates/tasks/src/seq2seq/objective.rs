//! An encoder-decoder trained on source -> target pairs as the trainer's [`Objective`]: every
//! tensor a `Var`, teacher-forced (label-smoothed) cross-entropy on the target tokens, and
//! evaluation loss/perplexity on held-out pairs.

use crate::generative::GenTask;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_data::IGNORE_INDEX;
use tasklm_generate::SamplingParams;
use tasklm_models::seq2seq::{EncoderDecoder, Seq2SeqModel};
use tasklm_models::{Model, ModelArchitecture, ModelConfig};
use tasklm_text::TextTokenizer;
use tasklm_train::trainer::{LossSum, Metrics, Objective};
use tasklm_train::{seq2seq_train_loss, TrainError};

/// One pair's token ids: the source as the encoder reads it, the target as the labels.
#[derive(Clone, Debug)]
pub struct EncodedPair {
    pub source: Vec<u32>,
    pub target: Vec<u32>,
}

/// Builds `arch` over `tensors` as trainable variables (sorted by name; a tied table is one
/// variable, so its gradients add up).
pub fn trainable_seq2seq(
    arch: ModelArchitecture,
    config: &ModelConfig,
    tensors: HashMap<String, Tensor>,
) -> crate::Result<(Seq2SeqModel, Vec<(String, Var)>)> {
    let mut params: Vec<(String, Var)> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, Var::from_tensor(&t.to_dtype(DType::F32)?)?)))
        .collect::<crate::Result<_>>()?;
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let map: HashMap<String, Tensor> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    match arch.build(config, vb, None)? {
        Model::Seq2Seq(m) => Ok((*m, params)),
        other => Err(crate::TaskError::Invalid(format!(
            "expected an encoder-decoder, built {}",
            other.kind().with_article()
        ))),
    }
}

/// Builds `arch` over `tensors` for LoRA training: the layers `lora` targets get fresh
/// adapters beside their frozen weights, the modules it saves whole become variables. Returns
/// the model and the adapter's parameters (PEFT's names).
pub fn trainable_seq2seq_lora(
    arch: ModelArchitecture,
    config: &ModelConfig,
    tensors: HashMap<String, Tensor>,
    lora: &tasklm_train::LoraTraining,
) -> crate::Result<(Seq2SeqModel, tasklm_train::lora::LoraParams)> {
    let device = Device::Cpu;
    let linear = tasklm_nn::linear_layer_names(tensors.clone(), DType::F32, &device, |vb| {
        arch.build(config, vb, None)
    })?;
    let layers = tasklm_train::lora::select_targets(&linear, lora)?;
    let mut no_quantized = tasklm_nn::QuantizedWeights::new();
    let p = tasklm_train::lora::lora_params(tensors, &mut no_quantized, layers, lora)?;
    let vb = VarBuilder::from_tensors(p.tensors.clone(), DType::F32, &device);
    match arch.build(config, vb, None)? {
        Model::Seq2Seq(m) => Ok((*m, p)),
        other => Err(crate::TaskError::Invalid(format!(
            "expected an encoder-decoder, built {}",
            other.kind().with_article()
        ))),
    }
}

/// A padded batch: source ids (B, S) with key masks, labels (B, T) with -100 past each target.
pub fn collate(rows: &[&EncodedPair], pad: u32) -> crate::Result<(Tensor, Vec<Vec<u8>>, Tensor)> {
    let s = rows
        .iter()
        .map(|r| r.source.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let t = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let (mut ids, mut masks, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        ids.extend(r.source.iter().copied());
        ids.extend(std::iter::repeat_n(pad, s - r.source.len()));
        let mut m = vec![1u8; r.source.len()];
        m.resize(s, 0);
        masks.push(m);
        labels.extend(r.target.iter().map(|&x| x as i64));
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, t - r.target.len()));
    }
    let b = rows.len();
    Ok((
        Tensor::from_vec(ids, (b, s), &Device::Cpu)?,
        masks,
        Tensor::from_vec(labels, (b, t), &Device::Cpu)?,
    ))
}

/// What the trainer runs for translate and summarize on an encoder-decoder.
pub struct Seq2SeqObjective {
    pub model: Seq2SeqModel,
    pub params: Vec<(String, Var)>,
    pub train: Vec<EncodedPair>,
    pub eval: Vec<EncodedPair>,
    pub label_smoothing: f64,
    pub eval_batch_size: usize,
    /// `config.json` as it will be written.
    pub config_json: Value,
    /// `generation_config.json`.
    pub generation_config: Value,
    /// Where the tokenizer files are copied from.
    pub tokenizer_dir: PathBuf,
    /// `tasklm.json`.
    pub provenance: Value,
    /// Generation metrics at each evaluation (transformers' `predict_with_generate`): the
    /// eval sources and references, decoded greedily with this tokenizer.
    pub generated_eval: Option<GeneratedEval>,
    /// A LoRA run's `adapter_config.json`: the directory then holds the adapter (PEFT's
    /// files) instead of `config.json` and `model.safetensors`.
    pub adapter: Option<tasklm_hub::AdapterConfig>,
}

/// What an evaluation that generates needs: translate scores sacreBLEU and chrF, summarize
/// ROUGE-1/2/L.
pub struct GeneratedEval {
    pub task: GenTask,
    pub tokenizer: TextTokenizer,
    pub sources: Vec<String>,
    pub references: Vec<Vec<String>>,
    pub max_new_tokens: usize,
}

impl GeneratedEval {
    fn metrics(&self, model: &Seq2SeqModel, batch: usize) -> crate::Result<Metrics> {
        let sources: Vec<&str> = self.sources.iter().map(String::as_str).collect();
        let sampling = SamplingParams::greedy(self.max_new_tokens);
        let bar = indicatif::ProgressBar::hidden();
        let preds = super::generate::generate_for(
            model,
            &self.tokenizer,
            &sources,
            &sampling,
            None,
            batch,
            &bar,
        )?;
        Ok(match self.task {
            GenTask::Summarize => {
                let (r1, r2, rl) = tasklm_eval::mean_rouge(&preds, &self.references);
                vec![
                    ("rouge1".into(), r1),
                    ("rouge2".into(), r2),
                    ("rougeL".into(), rl),
                ]
            }
            _ => vec![
                (
                    "bleu".into(),
                    tasklm_eval::corpus_bleu(&preds, &self.references).score,
                ),
                (
                    "chrf".into(),
                    tasklm_eval::corpus_chrf(&preds, &self.references).0,
                ),
            ],
        })
    }
}

impl Seq2SeqObjective {
    /// Summed loss of the pairs at `indices` of `pairs` (dropout as `train` says), scored
    /// positions and tokens read.
    fn loss_of(
        &self,
        pairs: &[EncodedPair],
        indices: &[usize],
        smoothing: f64,
        train: bool,
    ) -> crate::Result<(Tensor, usize, usize)> {
        let rows: Vec<&EncodedPair> = indices.iter().filter_map(|&i| pairs.get(i)).collect();
        let (src, mask, labels) = collate(&rows, self.model.pad_id())?;
        let tokens = rows.iter().map(|r| r.source.len() + r.target.len()).sum();
        let (sum, n) = seq2seq_train_loss(&self.model, &src, &mask, &labels, smoothing, train)?;
        Ok((sum, n, tokens))
    }
}

/// The files of a tokenizer a seq2seq directory may hold (copied beside the weights).
const TOKENIZER_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "source.spm",
    "target.spm",
    "vocab.json",
    "spiece.model",
    "merges.txt",
];

impl Objective for Seq2SeqObjective {
    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn train_lengths(&self) -> Option<Vec<usize>> {
        Some(
            self.train
                .iter()
                .map(|p| p.source.len() + p.target.len())
                .collect(),
        )
    }

    fn train_loss(&self, indices: &[usize]) -> tasklm_train::Result<LossSum> {
        let (sum, scored, tokens) = self
            .loss_of(&self.train, indices, self.label_smoothing, true)
            .map_err(TrainError::objective)?;
        Ok(LossSum {
            sum,
            scored,
            tokens,
        })
    }

    /// Cross-entropy per target token without label smoothing (so that perplexity means
    /// what it says), and perplexity.
    fn evaluate(&self) -> tasklm_train::Result<Option<Metrics>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let mut order: Vec<usize> = (0..self.eval.len()).collect();
        order.sort_by_key(|&i| self.eval[i].source.len());
        let (mut sum, mut n) = (0f64, 0usize);
        for chunk in order.chunks(self.eval_batch_size.max(1)) {
            let (s, k, _) = self
                .loss_of(&self.eval, chunk, 0.0, false)
                .map_err(TrainError::objective)?;
            sum += s.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            n += k;
        }
        let loss = if n > 0 { sum / n as f64 } else { f64::NAN };
        let mut m = vec![("loss".into(), loss), ("perplexity".into(), loss.exp())];
        if let Some(g) = &self.generated_eval {
            m.extend(
                g.metrics(&self.model, self.eval_batch_size)
                    .map_err(TrainError::objective)?,
            );
        }
        Ok(Some(m))
    }

    fn weights_file(&self) -> &str {
        match self.adapter {
            Some(_) => tasklm_hub::adapter::ADAPTER_WEIGHTS,
            None => "model.safetensors",
        }
    }

    fn write_files(&self, dir: &Path) -> tasklm_train::Result<()> {
        let io =
            |p: &Path, e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", p.display()));
        let write = |name: &str, v: &Value| {
            let p = dir.join(name);
            let text = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
            std::fs::write(&p, text).map_err(|e| io(&p, e))
        };
        match &self.adapter {
            // An adapter directory: no config.json, so nothing takes it for a full model.
            Some(a) => a.write(dir).map_err(TrainError::objective)?,
            None => write("config.json", &self.config_json)?,
        }
        write("generation_config.json", &self.generation_config)?;
        for f in TOKENIZER_FILES {
            let from = self.tokenizer_dir.join(f);
            if from.is_file() {
                let to = dir.join(f);
                std::fs::copy(&from, &to).map_err(|e| io(&from, e))?;
            }
        }
        crate::common::tasklm_json::write_tasklm_json(dir, &self.provenance)
            .map_err(TrainError::objective)
    }
}
