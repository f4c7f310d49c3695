//! A ViT with a linear `classifier` on its normed `[CLS]` vector, as transformers'
//! `ViTForImageClassification` (`vit.*`, `classifier.*`, `id2label` / `label2id` in
//! `config.json`), loaded from a directory, or initialised from its `config.json` alone when
//! it has no weights (training from scratch), with the image processor its
//! `preprocessor_config.json` describes (or transformers' ViT defaults at its `image_size`).

use super::file_err as data_err;
use crate::common::encoder_input::fresh_linear;
use crate::common::encoder_runner::task_config;
use crate::common::fresh_init::{normal, param_shapes};
use crate::{Notice, Result, TaskError};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_data::image::{ImageProcessor, PREPROCESSOR_CONFIG};
use tasklm_models::{weights, ModelArchitecture, ViTConfig, VisionArchitecture, Vit};
use tasklm_nn::Linear;

/// Images preprocessed and run together at inference.
pub const INFER_BATCH: usize = 32;

/// A ViT image classifier.
pub struct VisionClassifier {
    vit: Vit,
    head: Linear,
    pub labels: Vec<String>,
    pub processor: ImageProcessor,
    /// `preprocessor_config.json` as the trained directory gets it.
    pub processor_json: Value,
    params: Vec<(String, Var)>,
    config_json: Value,
}

/// `--model`: a directory, or the `config.json` in one.
fn model_dir(model: &Path) -> (PathBuf, PathBuf) {
    if model.is_file() {
        let dir = model.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, model.to_path_buf())
    } else {
        (model.to_path_buf(), model.join("config.json"))
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| data_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| data_err(path, format!("invalid JSON: {e}")))
}

/// `id2label` in id order.
fn labels_in(config: &Value) -> Option<Vec<String>> {
    let map = config.get("id2label")?.as_object()?;
    let mut pairs: Vec<(usize, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
        .collect();
    pairs.sort();
    Some(pairs.into_iter().map(|(_, v)| v).collect())
}

/// A normal draw with `std` for every tensor of a fresh ViT, as transformers initialises one
/// (its truncation at +-2 is beyond reach at std 0.02): layer-norm weights 1, biases 0.
fn fresh_tensor(
    name: &str,
    shape: &[usize],
    std: f64,
    rng: &mut rand::rngs::StdRng,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = if name.contains("layernorm") && name.ends_with(".weight") {
        vec![1.0; n]
    } else if name.ends_with(".bias") {
        vec![0.0; n]
    } else {
        normal(n, std, rng)
    };
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Every tensor a ViT of `cfg` has under `vit.`, freshly drawn from `seed`.
fn fresh_backbone(cfg: &ViTConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let shapes = param_shapes(|vb| Vit::new(cfg, vb.pp(Vit::PREFIX)).map(drop))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    shapes
        .into_iter()
        .map(|(k, s)| {
            let t = fresh_tensor(&k, &s, cfg.initializer_range, &mut rng)?;
            Ok((k, t))
        })
        .collect()
}

/// The ViT's tensors under `vit.` (a bare `ViTModel` is renamed; its pooler, unused by a
/// classifier, is left out) and the classifier's.
fn classifier_names(raw: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let prefixed = raw.contains_key(&format!("{}.embeddings.cls_token", Vit::PREFIX));
    raw.into_iter()
        .filter(|(k, _)| !k.starts_with("pooler.") && !k.starts_with("vit.pooler."))
        .map(|(k, t)| {
            if prefixed || k.starts_with("classifier.") {
                (k, t)
            } else {
                (format!("{}.{k}", Vit::PREFIX), t)
            }
        })
        .collect()
}

impl VisionClassifier {
    /// Loads the ViT at `model` with a head for `labels` (None: the checkpoint's own labels).
    /// A head whose labels differ is drawn afresh, as is the whole ViT when the directory has
    /// no weights; each is said through `notice`.
    pub fn load(
        model: &Path,
        labels: Option<Vec<String>>,
        seed: u64,
        notice: Notice,
    ) -> Result<Self> {
        let (dir, cfg_path) = model_dir(model);
        let config_json = read_json(&cfg_path)?;
        let arch = ModelArchitecture::from_config(&config_json, &cfg_path)
            .map_err(tasklm_hub::HubError::from)?;
        if arch != ModelArchitecture::Vision(VisionArchitecture::Vit) {
            return Err(TaskError::Invalid(format!(
                "image-classify trains a ViT (ViTModel, ViTForImageClassification); {} holds {}",
                cfg_path.display(),
                arch.kind().with_article()
            )));
        }
        let cfg: ViTConfig = serde_json::from_value(config_json.clone())
            .map_err(|e| data_err(&cfg_path, format!("not a ViT config: {e}")))?;
        cfg.validate().map_err(|m| data_err(&cfg_path, m))?;
        let has_weights = dir.join("model.safetensors").is_file()
            || dir.join("model.safetensors.index.json").is_file();
        let mut tensors = if has_weights {
            let raw = weights::load_safetensors_dir(&dir, DType::F32, &Device::Cpu)
                .map_err(tasklm_hub::HubError::from)?;
            classifier_names(raw)
        } else {
            notice(&format!(
                "{} has no weights: a ViT initialised from its config.json (seed {seed})",
                dir.display()
            ));
            fresh_backbone(&cfg, seed)?
        };
        let own = labels_in(&config_json);
        let labels = match (labels, &own) {
            (Some(l), _) => l,
            (None, Some(l)) if tensors.contains_key("classifier.weight") => l.clone(),
            (None, _) => {
                return Err(TaskError::Invalid(format!(
                    "{} has no trained classifier (`classifier.weight` and `id2label`)",
                    dir.display()
                )))
            }
        };
        let head_fits = own.as_ref() == Some(&labels)
            && tensors
                .get("classifier.weight")
                .is_some_and(|w| w.dims() == [labels.len(), cfg.hidden_size]);
        if !head_fits {
            if has_weights {
                notice(&format!(
                    "a fresh classifier for {} labels ({})",
                    labels.len(),
                    labels.join(", ")
                ));
            }
            let fresh = fresh_linear(
                "classifier",
                (labels.len(), cfg.hidden_size),
                cfg.initializer_range,
                seed.wrapping_add(1),
            )?;
            tensors.extend(fresh);
        }
        let params: Vec<(String, Var)> = {
            let mut v = tensors
                .iter()
                .map(|(k, t)| Ok((k.clone(), Var::from_tensor(t)?)))
                .collect::<Result<Vec<_>>>()?;
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let as_tensors: HashMap<String, Tensor> = params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let vb = VarBuilder::from_tensors(as_tensors, DType::F32, &Device::Cpu);
        let vit = Vit::new(&cfg, vb.pp(Vit::PREFIX))?;
        let head = Linear::new(cfg.hidden_size, labels.len(), true, vb.pp("classifier"))?;
        let pre = dir.join(PREPROCESSOR_CONFIG);
        let processor_json = if pre.is_file() {
            read_json(&pre)?
        } else {
            // transformers' ViTImageProcessor defaults, at the model's image size.
            json!({
                "image_processor_type": "ViTImageProcessor",
                "do_resize": true,
                "size": {"height": cfg.image_size, "width": cfg.image_size},
                "resample": 2,
                "do_rescale": true,
                "rescale_factor": 1.0 / 255.0,
                "do_normalize": true,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
            })
        };
        let processor = ImageProcessor::from_json(&processor_json, &pre)?;
        let (h, w) = processor.output_size(cfg.image_size, cfg.image_size);
        if (h, w) != (cfg.image_size, cfg.image_size) {
            return Err(data_err(
                &pre,
                format!(
                    "gives {h} x {w} images, and the model takes {0} x {0}",
                    cfg.image_size
                ),
            ));
        }
        Ok(Self {
            vit,
            head,
            labels,
            processor,
            processor_json,
            params,
            config_json,
        })
    }

    /// The trainable parameters by `model.safetensors` name.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    /// Logits (B, labels) for pixels (B, 3, S, S); `train` turns dropout on.
    pub fn logits(&self, pixels: &Tensor, train: bool) -> Result<Tensor> {
        let out = self.vit.forward_t(pixels, train)?;
        Ok(self.head.forward_t(&out.pooled, train)?)
    }

    /// Pixel values (3, S, S) of one image file.
    pub fn pixels(&self, image: &Path) -> Result<Tensor> {
        Ok(self.processor.process_file(image)?)
    }

    /// Label probabilities of each image (already preprocessed), in batches.
    pub fn probabilities(&self, pixels: &[Tensor]) -> Result<Vec<Vec<f64>>> {
        let mut out = Vec::with_capacity(pixels.len());
        for chunk in pixels.chunks(INFER_BATCH) {
            let batch = Tensor::stack(chunk, 0)?; // (B, 3, S, S)
            let p = candle_nn::ops::softmax_last_dim(&self.logits(&batch, false)?)?;
            out.extend(p.to_dtype(DType::F64)?.to_vec2::<f64>()?);
        }
        Ok(out)
    }

    /// `config.json` of the trained model (`ViTForImageClassification` with its labels).
    pub fn config_json(&self) -> Value {
        task_config(
            &self.config_json,
            "ViTForImageClassification",
            Some(&self.labels),
        )
    }
}
