//! LLaVA (Liu et al. 2023, <https://arxiv.org/abs/2304.08485>), as transformers'
//! `LlavaForConditionalGeneration` computes it: the vision tower's hidden states of one layer
//! (`vision_feature_layer`, indexing `hidden_states` with the embeddings first), `[CLS]` dropped
//! (`vision_feature_select_strategy` "default"; "full" keeps it), through the projector
//! `linear_2(act(linear_1(x)))`, spliced into the decoder's input at the image placeholder
//! tokens (`image_token_index`, one per feature), then the decoder as usual.
//!
//! Weight names as transformers 5 saves them: `vision_tower.*` (CLIP without `vision_model.`,
//! which older checkpoints have and which is accepted too), `multi_modal_projector.linear_{1,2}`,
//! `language_model.model.*` and `language_model.lm_head.*`.

use super::clip::{ClipVision, ClipVisionConfig};
use super::vit::{ViTConfig, Vit};
use super::{VisionConfig, VisionModel};
use crate::decoder::{CausalLm, DecoderInput, EmbedSpan};
use crate::error::{ModelError, Result};
use crate::registry::{DecoderArchitecture, DecoderModel};
use crate::LlamaConfig;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::Path;
use tasklm_nn::{Activation, Linear};

/// `config.json` of a `LlavaForConditionalGeneration`, parsed: the tower's and the decoder's
/// configs and the keys that join them.
#[derive(Clone, Debug, PartialEq)]
pub struct LlavaConfig {
    pub vision: VisionConfig,
    pub text_arch: DecoderArchitecture,
    pub text: LlamaConfig,
    /// The placeholder token: one per image feature in the input ids.
    pub image_token_index: u32,
    pub projector_act: Activation,
    pub projector_bias: bool,
    /// Index into the tower's `hidden_states` (embeddings first; negative from the end).
    pub vision_feature_layer: i64,
    /// `[CLS]` kept ("full") or dropped ("default").
    pub keep_cls: bool,
}

fn field<'a>(json: &'a Value, key: &str) -> Option<&'a Value> {
    json.get(key).filter(|v| !v.is_null())
}

impl LlavaConfig {
    /// Reads the config; every problem names `path` and the key.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self> {
        let bad = |m: String| ModelError::invalid(path, m);
        let vision_json =
            field(json, "vision_config").ok_or_else(|| bad("no `vision_config`".into()))?;
        let vision = match field(vision_json, "model_type").and_then(Value::as_str) {
            Some("clip_vision_model") | None => {
                let c: ClipVisionConfig = serde_json::from_value(vision_json.clone())
                    .map_err(|e| bad(format!("`vision_config`: not a CLIP vision config: {e}")))?;
                c.validate()
                    .map_err(|e| bad(format!("`vision_config`: {e}")))?;
                VisionConfig::Clip(c)
            }
            Some("vit") => {
                let c: ViTConfig = serde_json::from_value(vision_json.clone())
                    .map_err(|e| bad(format!("`vision_config`: not a ViT config: {e}")))?;
                c.validate()
                    .map_err(|e| bad(format!("`vision_config`: {e}")))?;
                VisionConfig::Vit(c)
            }
            Some(other) => {
                return Err(bad(format!(
                    "`vision_config.model_type` {other}: the vision towers tasklm builds are \
                     clip_vision_model and vit"
                )))
            }
        };
        let text_json = field(json, "text_config").ok_or_else(|| bad("no `text_config`".into()))?;
        let text_type = field(text_json, "model_type")
            .and_then(Value::as_str)
            .unwrap_or("llama");
        let text_arch = DecoderArchitecture::from_hf(text_type).ok_or_else(|| {
            bad(format!(
                "`text_config.model_type` {text_type}: the decoders tasklm builds are {}",
                DecoderArchitecture::supported_hf().join(", ")
            ))
        })?;
        let text: LlamaConfig = serde_json::from_value(text_json.clone())
            .map_err(|e| bad(format!("`text_config`: not a decoder config: {e}")))?;
        text.validate()
            .map_err(|e| bad(format!("`text_config`: {e}")))?;
        let int = |key: &str, default: i64| -> Result<i64> {
            match field(json, key) {
                None => Ok(default),
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| bad(format!("`{key}`: expected an integer, found {v}"))),
            }
        };
        let image_token_index = u32::try_from(int("image_token_index", 32000)?)
            .map_err(|_| bad("`image_token_index`: expected a token id".into()))?;
        if image_token_index as usize >= text.vocab_size {
            return Err(bad(format!(
                "`image_token_index` {image_token_index} is past the decoder's vocabulary of {}",
                text.vocab_size
            )));
        }
        let act_name = field(json, "projector_hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("gelu");
        let projector_act = Activation::from_name(act_name).ok_or_else(|| {
            bad(format!(
                "`projector_hidden_act` {act_name} is not supported ({})",
                Activation::NAMES
            ))
        })?;
        let layer_value = field(json, "vision_feature_layer");
        if layer_value.is_some_and(Value::is_array) {
            return Err(bad(
                "`vision_feature_layer`: a list of layers (features concatenated) is not \
                 supported; give one layer"
                    .into(),
            ));
        }
        let vision_feature_layer = int("vision_feature_layer", -2)?;
        let layers = match &vision {
            VisionConfig::Clip(c) => c.num_hidden_layers,
            VisionConfig::Vit(c) => c.num_hidden_layers,
        } as i64;
        if vision_feature_layer < -(layers + 1) || vision_feature_layer > layers {
            return Err(bad(format!(
                "`vision_feature_layer` {vision_feature_layer}: the tower has {} hidden states",
                layers + 1
            )));
        }
        let keep_cls = match field(json, "vision_feature_select_strategy").and_then(Value::as_str) {
            None | Some("default") => false,
            Some("full") => true,
            Some(other) => {
                return Err(bad(format!(
                    "`vision_feature_select_strategy` {other}: expected default or full"
                )))
            }
        };
        let projector_bias = field(json, "multimodal_projector_bias")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        Ok(Self {
            vision,
            text_arch,
            text,
            image_token_index,
            projector_act,
            projector_bias,
            vision_feature_layer,
            keep_cls,
        })
    }

    /// Image features (placeholder tokens) per image.
    pub fn tokens_per_image(&self) -> usize {
        self.vision.positions() - usize::from(!self.keep_cls)
    }
}

/// A built LLaVA model.
pub struct Llava {
    vision: VisionModel,
    linear_1: Linear,
    linear_2: Linear,
    lm: DecoderModel,
    cfg: LlavaConfig,
}

impl Llava {
    /// Builds the model from weights under `vb` (the checkpoint's top level).
    pub fn new(cfg: &LlavaConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let tower = vb.pp("vision_tower");
        let tower = if tower.contains_tensor(&format!(
            "{}.embeddings.patch_embedding.weight",
            ClipVision::PREFIX
        )) {
            tower.pp(ClipVision::PREFIX)
        } else {
            tower
        };
        let vision = match &cfg.vision {
            VisionConfig::Clip(c) => VisionModel::Clip(ClipVision::new(c, tower)?),
            VisionConfig::Vit(c) => VisionModel::Vit(Vit::new(c, tower)?),
        };
        let (v, t) = (cfg.vision.hidden_size(), cfg.text.hidden_size);
        let proj = vb.pp("multi_modal_projector");
        Ok(Self {
            vision,
            linear_1: Linear::new(v, t, cfg.projector_bias, proj.pp("linear_1"))?,
            linear_2: Linear::new(t, t, cfg.projector_bias, proj.pp("linear_2"))?,
            lm: cfg.text_arch.build(&cfg.text, vb.pp("language_model"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &LlavaConfig {
        &self.cfg
    }

    /// The decoder the image features go into.
    pub fn language_model(&self) -> &(dyn CausalLm + Send + Sync) {
        self.lm.as_ref()
    }

    /// The projected features of pixels (B, C, S, S): (B, tokens per image, decoder width).
    pub fn image_features(&self, pixels: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let out = self.vision.forward_t(pixels, train)?;
        let n = out.hidden_states.len() as i64;
        let layer = if self.cfg.vision_feature_layer < 0 {
            n + self.cfg.vision_feature_layer
        } else {
            self.cfg.vision_feature_layer
        };
        let Some(h) = usize::try_from(layer)
            .ok()
            .and_then(|l| out.hidden_states.get(l))
        else {
            candle_core::bail!(
                "vision_feature_layer {}: the tower gave {n} hidden states",
                self.cfg.vision_feature_layer
            );
        };
        let h = if self.cfg.keep_cls {
            h.clone()
        } else {
            h.narrow(1, 1, h.dim(1)? - 1)?
        };
        let x = self.linear_1.forward_t(&h, train)?;
        let x = self.cfg.projector_act.forward(&x)?;
        self.linear_2.forward_t(&x, train)
    }

    /// `input` with the features of `images` (one (n, H) tensor per image, in order) spliced
    /// in at its placeholder tokens: each row's runs of `image_token_index`, taken in order
    /// across the batch, each exactly one image's features long.
    pub fn splice(
        &self,
        input: DecoderInput,
        images: &[Tensor],
    ) -> candle_core::Result<DecoderInput> {
        let ids = input.input_ids.to_vec2::<u32>()?;
        let mut spans = Vec::new();
        let mut next = images.iter();
        for (row, ids) in ids.iter().enumerate() {
            let mut t = 0;
            while t < ids.len() {
                if ids[t] != self.cfg.image_token_index {
                    t += 1;
                    continue;
                }
                let start = t;
                while t < ids.len() && ids[t] == self.cfg.image_token_index {
                    t += 1;
                }
                let Some(feats) = next.next() else {
                    candle_core::bail!(
                        "row {row}: image placeholders at {start}..{t} but only {} images",
                        images.len()
                    );
                };
                let n = feats.dim(0)?;
                if n != t - start {
                    candle_core::bail!(
                        "row {row}: {} image placeholders at {start}..{t}, the image has {n} \
                         features (one placeholder per feature)",
                        t - start
                    );
                }
                spans.push(EmbedSpan {
                    row,
                    start,
                    embeds: feats.clone(),
                });
            }
        }
        if next.next().is_some() {
            candle_core::bail!(
                "{} images but only {} runs of image placeholders in the input",
                images.len(),
                spans.len()
            );
        }
        Ok(input.with_embeds(spans))
    }

    /// Logits (B, T, V) for ids with placeholders and their images' pixels (one image per
    /// placeholder run, in order).
    pub fn forward(
        &self,
        input: DecoderInput,
        pixels: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let feats = self.image_features(pixels, train)?;
        let images: Vec<Tensor> = (0..feats.dim(0)?)
            .map(|i| feats.get(i))
            .collect::<candle_core::Result<_>>()?;
        let input = self.splice(input, &images)?;
        let h = self.lm.forward_hidden(&input, None, train)?;
        self.lm.lm_logits(&h)
    }
}
