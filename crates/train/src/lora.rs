//! LoRA training: which layers get adapters, and the parameters the trainer sees. The base's
//! tensors stay plain tensors (frozen: no gradient, no optimizer state); each targeted layer
//! gets a fresh A and B (`Var`s), and each module saved whole becomes `Var`s. Every trainable
//! parameter is named as PEFT saves it (`base_model.model.{layer}.lora_A.weight`), so the
//! checkpoints and the final `adapter_model.safetensors` hold the adapter only, in PEFT's names.
//!
//! Over a quantized (GGUF) base (`--quantized`, QLoRA-style), the frozen matrices stay
//! quantized: a targeted layer's base is `LinearWeight::BlockQuantized`, whose backward gives
//! the input its gradient through the transposed quantized product, and only a module saved
//! whole (trained, so dense) is dequantized.

use crate::{Result, TrainError};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tasklm_nn::lora::{LORA_A, LORA_B, PEFT_PREFIX};
use tasklm_nn::quant::BlockFormat;
use tasklm_nn::{LoraSpec, QuantizedWeights};

/// `--lora-targets all-linear`: every linear layer but the output head and the modules saved whole.
pub const ALL_LINEAR: &str = "all-linear";

/// What `--lora` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraTraining {
    pub spec: LoraSpec,
    /// Layer names as PEFT matches them (`q_proj`, a full name, or [`ALL_LINEAR`]).
    pub targets: Vec<String>,
    /// Modules trained in full (`lm_head`, `score`, `classifier`).
    pub modules_to_save: Vec<String>,
    /// Seeds A's draws (with each layer's name).
    pub seed: u64,
    /// Keep a GGUF base's matrices quantized in memory (`--quantized`): the frozen base runs
    /// the quantized matmul forward and its transpose backward, never an f32 copy.
    pub quantized_base: bool,
}

/// A layer name's last component (`model.layers.0.self_attn.q_proj` -> `q_proj`).
fn last(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Does `module` (a module to save, or a target) name the layer or module `name`?
fn names(module: &str, name: &str) -> bool {
    name == module || name.ends_with(&format!(".{module}"))
}

/// The layers among `linear` that `targets` picks, as PEFT matches `target_modules`: a target
/// picks each layer whose name is it or ends in `.{target}`. A target that picks none is an
/// error naming it and listing the layer names the model has.
pub fn select_targets(linear: &[String], lora: &LoraTraining) -> Result<Vec<String>> {
    let saved = |l: &str| lora.modules_to_save.iter().any(|m| names(m, l));
    if lora.targets.iter().any(|t| t == ALL_LINEAR) {
        let picked: Vec<String> = linear
            .iter()
            .filter(|l| last(l) != "lm_head" && !saved(l))
            .cloned()
            .collect();
        return Ok(picked);
    }
    let mut picked = BTreeSet::new();
    for t in &lora.targets {
        let hits: Vec<&String> = linear.iter().filter(|l| names(t, l) && !saved(l)).collect();
        if hits.is_empty() {
            let kinds: BTreeSet<&str> = linear.iter().map(|l| last(l)).collect();
            return Err(TrainError::Setting(format!(
                "--lora-targets `{t}` matches no linear layer of this model; its linear layers \
                 are: {} (or pass {ALL_LINEAR})",
                kinds.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        picked.extend(hits.into_iter().cloned());
    }
    Ok(picked.into_iter().collect())
}

/// The distinct last components of `layers`: `target_modules` as `adapter_config.json` lists them.
pub fn target_modules(layers: &[String]) -> Vec<String> {
    let set: BTreeSet<&str> = layers.iter().map(|l| last(l)).collect();
    set.into_iter().map(String::from).collect()
}

fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, so each layer draws its own A whatever the load order.
    name.bytes().fold(seed ^ 0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// The tensors a model is built from for LoRA training, and its trainable parameters.
pub struct LoraParams {
    /// Base tensors (frozen) with each targeted layer's adapter beside its weight.
    pub tensors: HashMap<String, Tensor>,
    /// The adapters' A and B and the saved modules' tensors, under PEFT's names, sorted.
    pub params: Vec<(String, Var)>,
    /// The adapted layers' full names.
    pub layers: Vec<String>,
}

/// Adds fresh adapters on `layers` (from [`select_targets`]) to `tensors`, and makes the
/// modules to save trainable. A tied `lm_head` to save becomes a copy of the embedding table,
/// as PEFT copies the module; another module that has no tensors is an error naming it. A
/// module to save that `quantized` holds is dequantized (it trains, so it is dense) and taken
/// out of `quantized`; targeted layers in `quantized` stay there, as the adapters' frozen base.
pub fn lora_params(
    tensors: HashMap<String, Tensor>,
    quantized: &mut QuantizedWeights,
    layers: Vec<String>,
    lora: &LoraTraining,
) -> Result<LoraParams> {
    let device = tensors
        .values()
        .next()
        .map(|t| t.device().clone())
        .unwrap_or(Device::Cpu);
    let mut tensors: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    let mut params = Vec::new();
    for m in &lora.modules_to_save {
        let module_of = |k: &str| {
            k.rsplit_once('.')
                .is_some_and(|(module, _)| names(m, module))
        };
        let held: Vec<String> = quantized.keys().filter(|k| module_of(k)).cloned().collect();
        for k in held {
            if let Some(q) = quantized.remove(&k) {
                // The embedding table is dense already (lookups); its quantized copy served a
                // tied head, which now reads the trained table.
                if let std::collections::hash_map::Entry::Vacant(e) = tensors.entry(k) {
                    e.insert(q.dequantize(&device)?);
                }
            }
        }
        if m == "lm_head" && !tensors.contains_key("lm_head.weight") {
            if let Some(table) = tensors.get("model.embed_tokens.weight") {
                let copy = table.copy()?;
                tensors.insert("lm_head.weight".into(), copy);
            }
        }
        let owned: Vec<String> = tensors.keys().filter(|k| module_of(k)).cloned().collect();
        if owned.is_empty() {
            return Err(TrainError::Setting(format!(
                "--modules-to-save `{m}`: the model has no module of that name with weights"
            )));
        }
        for k in owned {
            let var = Var::from_tensor(&tensors[&k])?;
            tensors.insert(k.clone(), var.as_tensor().clone());
            params.push((format!("{PEFT_PREFIX}{k}"), var));
        }
    }
    for layer in &layers {
        let name = format!("{layer}.weight");
        let (out_dim, in_dim) = match (tensors.get(&name), quantized.get(&name)) {
            (Some(w), _) => w.dims2()?,
            (None, Some(q)) => q.shape().dims2()?,
            (None, None) => {
                return Err(TrainError::Setting(format!(
                    "LoRA target `{layer}` has no weight"
                )))
            }
        };
        let (a, b) = lora
            .spec
            .fresh(out_dim, in_dim, name_seed(lora.seed, layer), &device)?;
        let (a, b) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
        let parts = lora
            .spec
            .layer_tensors(layer, a.as_tensor().clone(), b.as_tensor().clone())?;
        tensors.extend(parts);
        params.push((format!("{PEFT_PREFIX}{layer}.{LORA_A}"), a));
        params.push((format!("{PEFT_PREFIX}{layer}.{LORA_B}"), b));
    }
    params.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(LoraParams {
        tensors,
        params,
        layers,
    })
}

/// A quantized base made ready to train over: matrices in a format without a backward here
/// (k-quants, on candle's matmul) are requantized to Q8_0 one at a time (8.5 bits a weight;
/// only that one matrix is ever f32), and the quantized embedding table is dropped when the
/// head does not read it (`untied`: the model has its own `lm_head`).
pub fn trainable_quantized(
    quantized: QuantizedWeights,
    untied: bool,
    device: &Device,
) -> Result<QuantizedWeights> {
    let mut out = QuantizedWeights::new();
    for (name, q) in quantized {
        if untied && name == "model.embed_tokens.weight" {
            continue;
        }
        let q = if BlockFormat::of(q.dtype()).is_some() {
            q
        } else {
            let dense = q.dequantize(device)?;
            Arc::new(QTensor::quantize(&dense, GgmlDType::Q8_0).map_err(|e| {
                TrainError::Setting(format!("{name}: requantizing to Q8_0 for training: {e}"))
            })?)
        };
        out.insert(name, q);
    }
    Ok(out)
}
