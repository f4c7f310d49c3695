//! A freshly initialised encoder-decoder (`--arch t5|bart|marian --model-config small.toml
//! --tokenizer DIR`): the config is transformers' own `config.json` keys for the arch, from the
//! arch's defaults (a Transformer-base: 6 + 6 layers, 512 wide, 8 heads, 2048 feed-forward)
//! with the TOML's keys over them and the vocabulary and special ids from the tokenizer; the
//! weights are drawn as transformers' `_init_weights` of that arch draws them.

use crate::common::fresh_init::{normal, param_shapes};
use crate::{Result, TaskError};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;
use tasklm_models::{ModelArchitecture, ModelConfig, Seq2SeqArchitecture};
use tasklm_text::TextTokenizer;

/// The `--arch` names.
pub fn parse_arch(name: &str) -> Result<Seq2SeqArchitecture> {
    match name {
        "t5" => Ok(Seq2SeqArchitecture::T5),
        "bart" => Ok(Seq2SeqArchitecture::Bart),
        "marian" => Ok(Seq2SeqArchitecture::Marian),
        other => Err(TaskError::Invalid(format!(
            "--arch `{other}`: expected t5, bart or marian"
        ))),
    }
}

/// The arch's `config.json` defaults (transformers' class and model type included).
fn defaults(arch: Seq2SeqArchitecture) -> Value {
    match arch {
        Seq2SeqArchitecture::T5 => json!({
            "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
            "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
            "num_decoder_layers": 6, "num_heads": 8, "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128, "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu",
            "tie_word_embeddings": true, "initializer_factor": 1.0,
        }),
        Seq2SeqArchitecture::Bart | Seq2SeqArchitecture::Marian => {
            let marian = arch == Seq2SeqArchitecture::Marian;
            json!({
                "architectures": [if marian { "MarianMTModel" } else { "BartForConditionalGeneration" }],
                "model_type": if marian { "marian" } else { "bart" },
                "d_model": 512, "encoder_layers": 6, "decoder_layers": 6,
                "encoder_attention_heads": 8, "decoder_attention_heads": 8,
                "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048,
                "activation_function": if marian { "swish" } else { "gelu" },
                "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0,
                "max_position_embeddings": if marian { 512 } else { 1024 },
                "scale_embedding": marian, "tie_word_embeddings": true,
                "share_encoder_decoder_embeddings": true, "init_std": 0.02,
                "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
            })
        }
    }
}

/// The special ids the arch needs, from the tokenizer: `<pad>` and `</s>` always (BART's
/// `<s>` too); the decoder starts from pad (T5, Marian) or `</s>` (BART).
fn special_ids(
    arch: Seq2SeqArchitecture,
    tok: &TextTokenizer,
    dir: &Path,
) -> Result<Map<String, Value>> {
    let need = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| TaskError::File {
            path: dir.to_path_buf(),
            msg: format!(
                "the tokenizer has no `{t}`, which a {arch:?} model needs (`tasklm tokenizer train` \
                 adds <pad>, </s>, <unk>, and <s> for BPE)"
            ),
        })
    };
    let (pad, eos) = (need("<pad>")?, need("</s>")?);
    let mut m = Map::new();
    m.insert("pad_token_id".into(), pad.into());
    m.insert("eos_token_id".into(), eos.into());
    match arch {
        Seq2SeqArchitecture::Bart => {
            m.insert("bos_token_id".into(), need("<s>")?.into());
            m.insert("decoder_start_token_id".into(), eos.into());
            m.insert("forced_eos_token_id".into(), eos.into());
        }
        Seq2SeqArchitecture::T5 | Seq2SeqArchitecture::Marian => {
            m.insert("decoder_start_token_id".into(), pad.into());
        }
    }
    if arch == Seq2SeqArchitecture::Marian {
        m.insert("decoder_vocab_size".into(), tok.vocab_size().into());
    }
    Ok(m)
}

/// What kind of JSON value `v` is, for a model config key of the wrong type.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
        Value::Null => "null",
    }
}

/// The `config.json` of a fresh `arch` model: defaults, then `model_config` (a TOML of
/// `config.json` keys, e.g. `d_model = 256`), then the tokenizer's vocabulary and special ids.
/// Parsed by the registry as any checkpoint's config is, so a bad key names the file.
pub fn fresh_config(
    arch: Seq2SeqArchitecture,
    model_config: Option<&Path>,
    tok: &TextTokenizer,
    tok_dir: &Path,
) -> Result<(Value, ModelConfig)> {
    let mut cfg = defaults(arch);
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| TaskError::Invalid("arch defaults are not an object".into()))?;
    if let Some(path) = model_config {
        let bad = |msg: String| TaskError::File {
            path: path.to_path_buf(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| bad(format!("not TOML of config.json keys: {e}")))?;
        for (k, v) in table {
            if matches!(k.as_str(), "architectures" | "model_type" | "vocab_size") {
                return Err(bad(format!(
                    "`{k}` comes from --arch and --tokenizer, not from the model config"
                )));
            }
            let v = serde_json::to_value(v).map_err(|e| bad(format!("`{k}`: {e}")))?;
            if let Some(want) = obj.get(&k).map(json_kind).filter(|w| *w != json_kind(&v)) {
                return Err(bad(format!("`{k}` = {v}: expected {want}")));
            }
            obj.insert(k, v);
        }
    }
    obj.insert("vocab_size".into(), tok.vocab_size().into());
    obj.extend(special_ids(arch, tok, tok_dir)?);
    obj.insert("torch_dtype".into(), "float32".into());
    let label = model_config.unwrap_or(Path::new("--arch defaults"));
    let parsed = ModelArchitecture::Seq2Seq(arch)
        .parse_config(&cfg, label)
        .map_err(|e| TaskError::Hub(e.into()))?;
    Ok((cfg, parsed))
}

/// The standard deviation transformers' `_init_weights` draws tensor `name` with; None for the
/// tensors it sets to constants (layer-norm scales 1, biases 0).
fn init_std(arch: Seq2SeqArchitecture, cfg: &Value, name: &str) -> Option<f64> {
    let f = |k: &str| cfg.get(k).and_then(Value::as_f64).unwrap_or(1.0);
    if name.ends_with(".bias") || name.contains("layer_norm") || name.contains("layernorm") {
        return None;
    }
    match arch {
        Seq2SeqArchitecture::T5 => {
            let factor = f("initializer_factor");
            let (d, kv, heads, ff) = (f("d_model"), f("d_kv"), f("num_heads"), f("d_ff"));
            let std = if name.ends_with("shared.weight") || name.starts_with("lm_head") {
                1.0
            } else if name.ends_with(".q.weight") {
                (d * kv).powf(-0.5)
            } else if name.ends_with(".o.weight") {
                (heads * kv).powf(-0.5)
            } else if name.ends_with(".wo.weight") {
                ff.powf(-0.5)
            } else {
                // k, v, wi (wi_0, wi_1) and the relative attention bias.
                d.powf(-0.5)
            };
            Some(factor * std)
        }
        Seq2SeqArchitecture::Bart | Seq2SeqArchitecture::Marian => {
            Some(cfg.get("init_std").and_then(Value::as_f64).unwrap_or(0.02))
        }
    }
}

/// Every tensor of a fresh model of `config`, drawn from `seed` (normal draws as `init_std`
/// says, layer-norm scales 1, biases 0, the embedding row of pad zero as BART and Marian
/// have it).
pub fn fresh_tensors(
    arch: Seq2SeqArchitecture,
    cfg_json: &Value,
    config: &ModelConfig,
    seed: u64,
) -> Result<HashMap<String, Tensor>> {
    let shapes = param_shapes(|vb| {
        ModelArchitecture::Seq2Seq(arch)
            .build(config, vb, None)
            .map(drop)
    })?;
    let pad = cfg_json.get("pad_token_id").and_then(Value::as_u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = HashMap::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = match init_std(arch, cfg_json, &name) {
            None if name.ends_with(".bias") => vec![0.0; n],
            None => vec![1.0; n],
            Some(std) => normal(n, std, &mut rng),
        };
        let embedding = name.ends_with("shared.weight") || name.ends_with("embed_tokens.weight");
        if let (Some(p), true, false) = (pad, embedding, arch == Seq2SeqArchitecture::T5) {
            let width = shape.last().copied().unwrap_or(0);
            let row = p as usize * width;
            if row + width <= v.len() {
                v[row..row + width].fill(0.0);
            }
        }
        out.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
    }
    Ok(out)
}
