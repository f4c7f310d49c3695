//! LoRA adapters in PEFT's format: a directory with `adapter_config.json` and
//! `adapter_model.safetensors`, whose tensors are named as PEFT's `get_peft_model_state_dict`
//! writes them: `base_model.model.{layer}.lora_A.weight` / `.lora_B.weight` (the adapter name
//! `default` left out) and, for `modules_to_save`, `base_model.model.{module}.weight`.
//!
//! Loading adds the adapter's tensors to the base's under tasklm's names (`{layer}.lora_A.weight`,
//! ..., see `tasklm_nn::lora`), where `Linear::load` finds them; merging folds `scale * B A` into
//! each adapted weight.

use crate::{HubError, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
pub use tasklm_nn::lora::PEFT_PREFIX;
use tasklm_nn::lora::{LORA_A, LORA_B};
use tasklm_nn::{LoraSpec, QuantizedWeights};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// `adapter_config.json`, the fields tasklm reads and writes.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterConfig {
    /// PEFT's `task_type`: `CAUSAL_LM`, `SEQ_CLS`, `TOKEN_CLS`, `QUESTION_ANS`.
    pub task_type: String,
    /// `base_model_name_or_path`: what `--model` resolves when no base is given.
    pub base_model: String,
    pub spec: LoraSpec,
    /// The layer names (last components, as PEFT matches them) the adapter targets.
    pub target_modules: Vec<String>,
    /// Modules trained in full and saved whole (`lm_head`, `score`, `classifier`).
    pub modules_to_save: Vec<String>,
}

/// Is `dir` a PEFT adapter directory?
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(String::from)).collect(),
        _ => None,
    }
}

impl AdapterConfig {
    /// Reads and checks `dir/adapter_config.json`; an error names the file and the field.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_CONFIG);
        let v = crate::checkpoint::read_json(&path)?;
        Self::from_json(&v).map_err(|msg| HubError::file(&path, msg))
    }

    /// Checks a parsed `adapter_config.json`; the error names the field.
    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let field = |k: &str| v.get(k).unwrap_or(&Value::Null);
        let text = |k: &str| -> std::result::Result<String, String> {
            field(k)
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("`{k}`: expected a string, found {}", field(k)))
        };
        let peft_type = text("peft_type")?;
        if peft_type != "LORA" {
            return Err(format!(
                "`peft_type`: {peft_type}, tasklm reads LORA adapters only"
            ));
        }
        let r = field("r")
            .as_u64()
            .filter(|r| *r > 0)
            .ok_or_else(|| format!("`r`: expected a rank of at least 1, found {}", field("r")))?;
        let alpha = field("lora_alpha").as_f64().ok_or_else(|| {
            format!(
                "`lora_alpha`: expected a number, found {}",
                field("lora_alpha")
            )
        })?;
        let dropout = match field("lora_dropout") {
            Value::Null => 0.0,
            d => d
                .as_f64()
                .filter(|p| (0.0..1.0).contains(p))
                .ok_or_else(|| format!("`lora_dropout`: expected a number in [0, 1), found {d}"))?,
        };
        let flag = |k: &str| -> std::result::Result<bool, String> {
            match field(k) {
                Value::Null => Ok(false),
                Value::Bool(b) => Ok(*b),
                other => Err(format!("`{k}`: expected true or false, found {other}")),
            }
        };
        for (k, what) in [
            ("fan_in_fan_out", "transposed (Conv1D) weights"),
            ("use_dora", "DoRA"),
        ] {
            if flag(k)? {
                return Err(format!("`{k}`: true ({what}) is not supported"));
            }
        }
        match field("bias") {
            Value::Null => {}
            Value::String(b) if b == "none" => {}
            other => return Err(format!("`bias`: {other}, only \"none\" is supported")),
        }
        for k in ["rank_pattern", "alpha_pattern", "layers_to_transform"] {
            let empty = match field(k) {
                Value::Null => true,
                Value::Object(o) => o.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !empty {
                return Err(format!("`{k}`: per-layer settings are not supported"));
            }
        }
        let target_modules = strings(field("target_modules"))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!(
                    "`target_modules`: expected a list of module names, found {}",
                    field("target_modules")
                )
            })?;
        let modules_to_save = strings(field("modules_to_save")).ok_or_else(|| {
            format!(
                "`modules_to_save`: expected a list of module names, found {}",
                field("modules_to_save")
            )
        })?;
        Ok(Self {
            task_type: v
                .get("task_type")
                .and_then(Value::as_str)
                .unwrap_or("CAUSAL_LM")
                .to_string(),
            base_model: text("base_model_name_or_path")?,
            spec: LoraSpec {
                r: r as usize,
                alpha,
                dropout: dropout as f32,
                rslora: flag("use_rslora")?,
            },
            target_modules,
            modules_to_save,
        })
    }

    /// `adapter_config.json` as PEFT writes it, with the fields PEFT's loader reads.
    pub fn to_json(&self) -> Value {
        let to_save = (!self.modules_to_save.is_empty()).then(|| json!(self.modules_to_save));
        json!({
            "peft_type": "LORA",
            "task_type": self.task_type,
            "base_model_name_or_path": self.base_model,
            "r": self.spec.r,
            "lora_alpha": self.spec.alpha,
            "lora_dropout": self.spec.dropout,
            "target_modules": self.target_modules,
            "bias": "none",
            "modules_to_save": to_save,
            "use_rslora": self.spec.rslora,
            "use_dora": false,
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null,
        })
    }

    /// Writes `dir/adapter_config.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(ADAPTER_CONFIG);
        let text =
            serde_json::to_string_pretty(&self.to_json()).map_err(|e| HubError::file(&path, e))?;
        std::fs::write(&path, text + "\n").map_err(|e| HubError::file(&path, e))
    }
}

/// An adapter read from its directory: its config and its tensors under PEFT's names.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub config: AdapterConfig,
    pub tensors: HashMap<String, Tensor>,
}

/// Reads `dir/adapter_config.json` and `dir/adapter_model.safetensors`.
pub fn read_adapter(dir: &Path, device: &Device) -> Result<Adapter> {
    let config = AdapterConfig::read(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    let tensors =
        candle_core::safetensors::load(&path, device).map_err(|e| HubError::file(&path, e))?;
    Ok(Adapter { config, tensors })
}

/// Is `name` (`score.weight`) a parameter of a module the config saves whole?
fn saved_whole(config: &AdapterConfig, name: &str) -> bool {
    let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
    let last = module.rsplit('.').next().unwrap_or(module);
    config
        .modules_to_save
        .iter()
        .any(|m| m == module || m == last)
}

/// One adapted layer's A and B, by the layer's name; and the modules saved whole.
struct Parts {
    layers: Vec<(String, Tensor, Tensor)>,
    whole: Vec<(String, Tensor)>,
}

fn parts(adapter: &Adapter, file: &Path, has: &dyn Fn(&str) -> bool) -> Result<Parts> {
    let bad = |m: String| HubError::file(file, m);
    let mut a_of = HashMap::new();
    let mut b_of = HashMap::new();
    let mut whole = Vec::new();
    for (key, t) in &adapter.tensors {
        let name = key.strip_prefix(PEFT_PREFIX).ok_or_else(|| {
            bad(format!(
                "tensor `{key}` does not start with `{PEFT_PREFIX}`"
            ))
        })?;
        if let Some(layer) = name.strip_suffix(&format!(".{LORA_A}")) {
            a_of.insert(layer.to_string(), t.clone());
        } else if let Some(layer) = name.strip_suffix(&format!(".{LORA_B}")) {
            b_of.insert(layer.to_string(), t.clone());
        } else if has(name) || saved_whole(&adapter.config, name) {
            // A module saved whole replaces the base's, or is one the base lacks (the fresh
            // head of a bare `BertModel`, a head the base ties to its embeddings).
            whole.push((name.to_string(), t.clone()));
        } else {
            return Err(bad(format!(
                "tensor `{key}`: the base model has no `{name}`"
            )));
        }
    }
    let mut layers = Vec::new();
    for (layer, a) in a_of {
        let b = b_of.remove(&layer).ok_or_else(|| {
            bad(format!(
                "`{PEFT_PREFIX}{layer}.{LORA_A}` has no `{LORA_B}` beside it"
            ))
        })?;
        if !has(&format!("{layer}.weight")) {
            return Err(bad(format!("`{PEFT_PREFIX}{layer}.{LORA_A}` adapts `{layer}`, which the base model does not have")));
        }
        layers.push((layer, a, b));
    }
    if let Some(layer) = b_of.keys().next() {
        return Err(bad(format!(
            "`{PEFT_PREFIX}{layer}.{LORA_B}` has no `{LORA_A}` beside it"
        )));
    }
    layers.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(Parts { layers, whole })
}

/// Adds `adapter` to a base's `tensors` (tasklm's names; `quantized` the matrices kept
/// quantized): each adapted layer gets its A, B, scale and dropout beside its weight, and each
/// module saved whole replaces the base's (a quantized one is taken out of `quantized`, so the
/// trained dense module is what loads). `file` names the adapter in errors.
pub fn apply_adapter(
    tensors: &mut HashMap<String, Tensor>,
    quantized: &mut QuantizedWeights,
    adapter: &Adapter,
    file: &Path,
) -> Result<()> {
    let names: BTreeSet<String> = tensors.keys().chain(quantized.keys()).cloned().collect();
    let p = parts(adapter, file, &|n| names.contains(n))?;
    for (layer, a, b) in p.layers {
        tensors.extend(adapter.config.spec.layer_tensors(&layer, a, b)?);
    }
    for (name, _) in &p.whole {
        quantized.remove(name);
    }
    tensors.extend(p.whole);
    Ok(())
}

/// Was the adapter in `dir` trained over a quantized base (`tasklm train --lora --quantized`,
/// recorded as `quantized_base` in its `tasklm.json`)? Such an adapter loads over its GGUF base
/// kept quantized, so its outputs are the ones it was trained to give.
pub fn trained_on_quantized_base(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("tasklm.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .is_some_and(|v| v["quantized_base"] == serde_json::Value::Bool(true))
}

/// Folds `adapter` into a base's dense `tensors`: `W + scale * B A` for each adapted layer, the
/// saved modules in place of the base's. The result is a plain model's weights.
pub fn merge_adapter(
    tensors: &mut HashMap<String, Tensor>,
    adapter: &Adapter,
    file: &Path,
) -> Result<()> {
    let p = parts(adapter, file, &|n| tensors.contains_key(n))?;
    let scale = adapter.config.spec.scale();
    for (layer, a, b) in p.layers {
        let key = format!("{layer}.weight");
        let w = tensors
            .get(&key)
            .ok_or_else(|| HubError::file(file, format!("the base model has no `{key}`")))?;
        let delta = b.matmul(&a)?.affine(scale, 0.0)?.to_dtype(w.dtype())?; // (out, in)
        let merged = (w + delta)?;
        tensors.insert(key, merged);
    }
    tensors.extend(p.whole);
    Ok(())
}
