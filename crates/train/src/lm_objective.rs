//! Causal language modelling as a trainer [`Objective`]: the decoder's parameters as `Var`s,
//! the SFT loss on supervised tokens, and evaluation loss/perplexity on held-out features.

use crate::lora::{lora_params, select_targets, trainable_quantized, LoraParams, LoraTraining};
use crate::trainer::{LossSum, Metrics, Objective};
use crate::{causal_lm_loss, Result, TrainError};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;
use tasklm_data::{collate, Features};
use tasklm_models::{Architecture, DecoderModel, LlamaConfig};
use tasklm_nn::{linear_layer_names, QuantizedWeights};

/// Builds `arch` over `tensors` as trainable variables; returns the model and its parameters
/// (sorted by name). Tied weights are one variable, so their gradients add up.
pub fn trainable_decoder(
    arch: Architecture,
    cfg: &LlamaConfig,
    tensors: HashMap<String, Tensor>,
) -> Result<(DecoderModel, Vec<(String, Var)>)> {
    let device = tensors
        .values()
        .next()
        .map(|t| t.device().clone())
        .unwrap_or(Device::Cpu);
    let mut params: Vec<(String, Var)> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, Var::from_tensor(&t.to_dtype(DType::F32)?)?)))
        .collect::<Result<_>>()?;
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let map: HashMap<String, Tensor> = params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let model = arch.build(cfg, VarBuilder::from_tensors(map, DType::F32, &device))?;
    Ok((model, params))
}

/// Builds `arch` over `tensors` for LoRA training: the layers `lora` targets get fresh
/// adapters, the base stays frozen. Matrices in `quantized` (a GGUF base loaded with
/// `--quantized`) stay quantized ([`crate::lora::trainable_quantized`]), except the modules
/// saved whole. Returns the model and its adapter parameters.
pub fn trainable_decoder_lora(
    arch: Architecture,
    cfg: &LlamaConfig,
    tensors: HashMap<String, Tensor>,
    quantized: QuantizedWeights,
    lora: &LoraTraining,
) -> Result<(DecoderModel, LoraParams)> {
    let device = tensors
        .values()
        .next()
        .map(|t| t.device().clone())
        .unwrap_or(Device::Cpu);
    let untied = tensors.contains_key("lm_head.weight") || quantized.contains_key("lm_head.weight");
    let mut quantized = trainable_quantized(quantized, untied, &device)?;
    // The layer names, from a build where each quantized matrix is a stand-in of its shape
    // (one zero broadcast, no memory), so nothing is converted twice.
    let mut shapes = tensors.clone();
    for (name, q) in &quantized {
        if !shapes.contains_key(name) {
            let stand_in = Tensor::zeros((1, 1), DType::F32, &device)?.broadcast_as(q.shape())?;
            shapes.insert(name.clone(), stand_in);
        }
    }
    let linear = linear_layer_names(shapes, DType::F32, &device, |vb| arch.build(cfg, vb))?;
    let layers = select_targets(&linear, lora)?;
    let p = lora_params(tensors, &mut quantized, layers, lora)?;
    let vb = VarBuilder::from_tensors(p.tensors.clone(), DType::F32, &device);
    let q = (!quantized.is_empty()).then_some(&quantized);
    // The quantized map is dropped on return: the model holds its own block-quantized copies.
    Ok((arch.build_with(cfg, vb, q)?, p))
}

/// Language-model loss and perplexity over `features`, in batches of `batch_size` rows of
/// similar length. Returns (mean loss per scored token, tokens scored).
pub fn lm_eval(
    model: &dyn tasklm_models::CausalLm,
    features: &[Features],
    pad_id: u32,
    batch_size: usize,
) -> Result<(f64, usize)> {
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by_key(|&i| features[i].input_ids.len());
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in order.chunks(batch_size.max(1)) {
        let rows: Vec<Features> = chunk.iter().map(|&i| features[i].clone()).collect();
        let batch = collate(&rows, pad_id, model.device()).map_err(TrainError::objective)?;
        let (s, k) = causal_lm_loss(model, &batch, false)?;
        sum += s.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        n += k;
    }
    Ok((if n > 0 { sum / n as f64 } else { f64::NAN }, n))
}

/// Writes the files beside the weights (config, tokenizer, ...).
pub type FileWriter = Box<dyn Fn(&Path) -> Result<()>>;

/// A decoder trained on next-token prediction over encoded features.
pub struct LmObjective {
    pub model: DecoderModel,
    pub params: Vec<(String, Var)>,
    pub train: Vec<Features>,
    pub eval: Vec<Features>,
    pub pad_id: u32,
    pub eval_batch_size: usize,
    pub files: FileWriter,
    /// Where the final weights go ([`Objective::weights_file`]).
    pub weights_file: &'static str,
}

impl Objective for LmObjective {
    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn train_lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.iter().map(|f| f.input_ids.len()).collect())
    }

    fn train_loss(&self, indices: &[usize]) -> Result<LossSum> {
        let rows: Vec<Features> = indices
            .iter()
            .filter_map(|&i| self.train.get(i).cloned())
            .collect();
        let batch =
            collate(&rows, self.pad_id, self.model.device()).map_err(TrainError::objective)?;
        let (sum, scored) = causal_lm_loss(self.model.as_ref(), &batch, true)?;
        Ok(LossSum {
            sum,
            scored,
            tokens: batch.n_tokens,
        })
    }

    fn evaluate(&self) -> Result<Option<Metrics>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let (loss, _) = lm_eval(
            self.model.as_ref(),
            &self.eval,
            self.pad_id,
            self.eval_batch_size,
        )?;
        Ok(Some(vec![
            ("loss".into(), loss),
            ("perplexity".into(), loss.exp()),
        ]))
    }

    fn weights_file(&self) -> &str {
        self.weights_file
    }

    fn write_files(&self, dir: &Path) -> Result<()> {
        (self.files)(dir)
    }
}
