//! LoRA training: which layers get adapters, and the parameters the trainer sees. The base's
//! tensors stay plain tensors (frozen: no gradient, no optimizer state); each targeted layer
//! gets a fresh A and B (`Var`s), and each module saved whole becomes `Var`s. Every trainable
//! parameter is named as PEFT saves it (`base_model.model.{layer}.lora_A.weight`), so the
//! checkpoints and the final `adapter_model.safetensors` hold the adapter only, in PEFT's names.

use crate::{Result, TrainError};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeSet, HashMap};
use tasklm_nn::lora::{LORA_A, LORA_B, PEFT_PREFIX};
use tasklm_nn::LoraSpec;

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
/// as PEFT copies the module; another module that has no tensors is an error naming it.
pub fn lora_params(
    tensors: HashMap<String, Tensor>,
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
        if m == "lm_head" && !tensors.contains_key("lm_head.weight") {
            if let Some(table) = tensors.get("model.embed_tokens.weight") {
                let copy = table.copy()?;
                tensors.insert("lm_head.weight".into(), copy);
            }
        }
        let owned: Vec<String> = tensors
            .keys()
            .filter(|k| {
                k.rsplit_once('.')
                    .is_some_and(|(module, _)| names(m, module))
            })
            .cloned()
            .collect();
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
        let w = tensors.get(&format!("{layer}.weight")).ok_or_else(|| {
            TrainError::Setting(format!("LoRA target `{layer}` has no dense weight"))
        })?;
        let (out_dim, in_dim) = w.dims2()?;
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
