//! A LLaVA model made from parts: a vision encoder directory (ViT or CLIP's vision tower, e.g.
//! one trained by `--task image-classify`), a decoder (SmolLM2, any Llama/Qwen2 checkpoint)
//! and a fresh projector, with `<image>` added to the decoder's tokenizer. The result is kept
//! under the names transformers 5 saves `LlavaForConditionalGeneration` with, so the directory
//! [`save`] writes is one transformers loads, and [`load`] reads it back.
//!
//! The new token's embedding row (and untied head row) is the mean of the others, as
//! transformers' `resize_token_embeddings` makes it; the projector's weights are drawn from
//! N(0, 0.02) with zero biases, as transformers' `_init_weights` does.

use crate::common::fresh_init::normal;
use crate::{Result, TaskError};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use tasklm_models::vision::llava::LlavaConfig;
use tasklm_models::VisionConfig;
use tasklm_text::TextTokenizer;

/// The image placeholder token added to the decoder's vocabulary.
pub const IMAGE_TOKEN: &str = "<image>";
/// transformers' `initializer_range` for the projector.
const PROJECTOR_STD: f64 = 0.02;

/// A vision-language model's config, weights and tokenizer.
pub struct VlmParts {
    /// `config.json` as written.
    pub config_json: Value,
    pub config: LlavaConfig,
    /// Every tensor under the saved names (`vision_tower.*`, `multi_modal_projector.*`,
    /// `language_model.model.*`, `language_model.lm_head.*`).
    pub tensors: HashMap<String, Tensor>,
    /// The decoder's tokenizer with [`IMAGE_TOKEN`].
    pub tokenizer: TextTokenizer,
    /// The vision tower's `preprocessor_config.json`, when it has one.
    pub preprocessor: Option<Value>,
}

/// `tensor` (rows, cols) with rows appended up to `rows`, each the mean of the first ones.
fn grow_rows(tensor: &Tensor, rows: usize) -> Result<Tensor> {
    let (have, _) = tensor.dims2()?;
    if have >= rows {
        return Ok(tensor.clone());
    }
    let mean = tensor.mean_keepdim(0)?; // (1, cols)
    let extra = mean.repeat((rows - have, 1))?;
    Ok(Tensor::cat(&[tensor, &extra], 0)?)
}

/// `x` (saved name) without the prefix a classifier or a CLIP checkpoint puts the tower under.
fn tower_name(name: &str) -> Option<String> {
    if name.starts_with("classifier.") {
        return None;
    }
    let bare = name
        .strip_prefix("vit.")
        .or_else(|| name.strip_prefix("vision_model."))
        .unwrap_or(name);
    Some(format!("vision_tower.{bare}"))
}

/// Which of the vision tower's outputs a fresh LLaVA feeds the projector: transformers'
/// `vision_feature_layer` (an index into the hidden states, the embeddings first; -2, the
/// input of the last layer, by default) and `vision_feature_select_strategy` ("default" drops
/// `[CLS]`, "full" keeps it: with a tower trained as a classifier, its last `[CLS]` carries
/// the class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisionFeatures {
    pub layer: i64,
    pub keep_cls: bool,
}

impl Default for VisionFeatures {
    fn default() -> Self {
        Self {
            layer: -2,
            keep_cls: false,
        }
    }
}

/// Builds a LLaVA from the vision encoder in `vision` and the decoder `decoder` (a catalog
/// name, directory or GGUF file), taking `features` of the tower, with a fresh projector
/// drawn from `seed`.
pub fn assemble(
    vision: &Path,
    decoder: &str,
    features: VisionFeatures,
    seed: u64,
    progress: bool,
) -> Result<VlmParts> {
    let device = Device::Cpu;
    let tower = tasklm_hub::load_vision_dir(vision, DType::F32, &device)?;
    let source = tasklm_hub::resolve(decoder, progress)?;
    let opts = tasklm_hub::LoadOptions {
        dtype: DType::F32,
        quantized: false,
    };
    let lm = tasklm_hub::load_checkpoint_with(&source, opts, &device)?;
    let mut tokenizer = lm.tokenizer;
    if tokenizer.token_to_id(IMAGE_TOKEN).is_none() {
        tokenizer.add_special_tokens(&[IMAGE_TOKEN])?;
    }
    let image_id = tokenizer
        .token_to_id(IMAGE_TOKEN)
        .ok_or_else(|| TaskError::Invalid(format!("the tokenizer did not take {IMAGE_TOKEN}")))?;
    let mut text = lm.config.clone();
    text.vocab_size = text.vocab_size.max(image_id as usize + 1);

    let mut tensors = HashMap::new();
    for (name, t) in tower.tensors {
        if let Some(n) = tower_name(&name) {
            tensors.insert(n, t);
        }
    }
    for (name, t) in lm.tensors {
        let t = if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
            grow_rows(&t, text.vocab_size)?
        } else {
            t
        };
        tensors.insert(format!("language_model.{name}"), t);
    }
    let (v, h) = (tower.config.hidden_size(), text.hidden_size);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for (name, (rows, cols)) in [("linear_1", (h, v)), ("linear_2", (h, h))] {
        let w = Tensor::from_vec(
            normal(rows * cols, PROJECTOR_STD, &mut rng),
            (rows, cols),
            &device,
        )?;
        tensors.insert(format!("multi_modal_projector.{name}.weight"), w);
        tensors.insert(
            format!("multi_modal_projector.{name}.bias"),
            Tensor::zeros(rows, DType::F32, &device)?,
        );
    }

    let mut vision_json = tower.config_json.clone();
    if let Value::Object(o) = &mut vision_json {
        for key in [
            "architectures",
            "id2label",
            "label2id",
            "torch_dtype",
            "dtype",
        ] {
            o.remove(key);
        }
        let model_type = match tower.config {
            VisionConfig::Vit(_) => "vit",
            VisionConfig::Clip(_) => "clip_vision_model",
        };
        o.insert("model_type".into(), json!(model_type));
    }
    let mut text_json = tasklm_hub::hf_config(lm.architecture, &text)?;
    if let Value::Object(o) = &mut text_json {
        o.remove("architectures");
    }
    let config_json = json!({
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": image_id,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": features.layer,
        "vision_feature_select_strategy": if features.keep_cls { "full" } else { "default" },
        "multimodal_projector_bias": true,
        "tie_word_embeddings": text.tie_word_embeddings,
        "vision_config": vision_json,
        "text_config": text_json,
    });
    let config = LlavaConfig::from_json(&config_json, &vision.join("config.json"))?;
    let mut config_json = config_json;
    config_json["image_seq_length"] = json!(config.tokens_per_image());
    let preprocessor = read_preprocessor(vision);
    Ok(VlmParts {
        config_json,
        config,
        tensors,
        tokenizer,
        preprocessor,
    })
}

/// `dir`'s `preprocessor_config.json`, when it has a readable one.
fn read_preprocessor(dir: &Path) -> Option<Value> {
    std::fs::read_to_string(dir.join(tasklm_data::PREPROCESSOR_CONFIG))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    std::fs::write(path, text).map_err(|e| TaskError::File {
        path: path.into(),
        msg: e.to_string(),
    })
}

/// Writes `parts` into `dir`: `config.json`, `model.safetensors`, the tokenizer files and
/// the tower's `preprocessor_config.json`.
pub fn save(parts: &VlmParts, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TaskError::File {
        path: dir.into(),
        msg: e.to_string(),
    })?;
    write_json(&dir.join("config.json"), &parts.config_json)?;
    let weights = dir.join("model.safetensors");
    candle_core::safetensors::save(&parts.tensors, &weights)?;
    tasklm_hub::write_tokenizer_files(dir, &parts.config.text, &parts.tokenizer)?;
    if let Some(p) = &parts.preprocessor {
        write_json(&dir.join("preprocessor_config.json"), p)?;
    }
    Ok(())
}

/// Reads a LLaVA directory ([`save`]'s, or transformers').
pub fn load(dir: &Path) -> Result<VlmParts> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TaskError::File {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    let config_json: Value = serde_json::from_str(&text).map_err(|e| TaskError::File {
        path: path.clone(),
        msg: format!("invalid JSON: {e}"),
    })?;
    let config = LlavaConfig::from_json(&config_json, &path)?;
    let tensors = tasklm_models::weights::load_safetensors_dir(dir, DType::F32, &Device::Cpu)?;
    let tokenizer = TextTokenizer::from_dir(dir)?;
    if tokenizer.token_to_id(IMAGE_TOKEN) != Some(config.image_token_index) {
        return Err(TaskError::File {
            path: dir.join("tokenizer.json"),
            msg: format!(
                "{IMAGE_TOKEN} is not token {} (config.json's image_token_index)",
                config.image_token_index
            ),
        });
    }
    let preprocessor = read_preprocessor(dir);
    Ok(VlmParts {
        config_json,
        config,
        tensors,
        tokenizer,
        preprocessor,
    })
}
