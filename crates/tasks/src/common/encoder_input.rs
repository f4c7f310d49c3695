//! What every encoder task shares: `[CLS] a [SEP] (b [SEP])` encoding with token types and
//! longest-first truncation, trainable parameters over a checkpoint, and fresh head weights.

use crate::{Result, TaskError, TaskKind};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use tasklm_hub::encoder::BERT_PREFIX;
use tasklm_hub::EncoderCheckpoint;
use tasklm_models::{Bert, BertConfig, ClassifierHead};
use tasklm_text::TextTokenizer;

/// Seed of a fresh head's weights.
pub const HEAD_SEED: u64 = 0;

/// Token ids and their token types (0 for the first text, 1 for the second).
pub type EncodedPair = (Vec<u32>, Vec<u32>);

/// Lengths the two texts keep under `budget` tokens, as the tokenizers library's
/// `longest_first` strategy cuts them: the shorter keeps all of itself up to half the budget,
/// the longer gets the rest (an odd token goes to the second text).
pub fn longest_first(n1: usize, n2: usize, budget: usize) -> (usize, usize) {
    if n1 + n2 <= budget {
        return (n1, n2);
    }
    let swap = n1 > n2;
    let short = n1.min(n2);
    let (mut s, mut l) = (short, budget.saturating_sub(short).max(short));
    if s + l > budget {
        s = budget / 2;
        l = s + budget % 2;
    }
    if swap {
        (l, s)
    } else {
        (s, l)
    }
}

/// Encodes texts for an encoder with its special tokens.
#[derive(Clone)]
pub struct PairEncoder {
    pub tokenizer: TextTokenizer,
    pub cls_id: u32,
    pub sep_id: u32,
    pub max_len: usize,
}

impl PairEncoder {
    /// `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, cut longest-first to `max_len` tokens;
    /// returns the encoding and whether it was cut.
    pub fn encode(&self, a: &str, b: Option<&str>) -> Result<(EncodedPair, bool)> {
        let mut ta = self.tokenizer.encode(a, false)?;
        let mut tb = match b {
            Some(b) => self.tokenizer.encode(b, false)?,
            None => Vec::new(),
        };
        let specials = if b.is_some() { 3 } else { 2 };
        if self.max_len <= specials {
            return Err(TaskError::Invalid(format!(
                "--max-seq-len {}: must leave room for text beside {specials} special tokens",
                self.max_len
            )));
        }
        let (ka, kb) = longest_first(ta.len(), tb.len(), self.max_len - specials);
        let cut = ka < ta.len() || kb < tb.len();
        ta.truncate(ka);
        tb.truncate(kb);
        let mut ids = Vec::with_capacity(ka + kb + specials);
        ids.push(self.cls_id);
        ids.extend(ta);
        ids.push(self.sep_id);
        let mut types = vec![0u32; ids.len()];
        if b.is_some() {
            ids.extend(tb);
            ids.push(self.sep_id);
            types.resize(ids.len(), 1);
        }
        Ok(((ids, types), cut))
    }
}

/// The head a task puts on the backbone: a linear layer `name` with `outputs` rows.
pub struct HeadSpec {
    pub name: &'static str,
    pub outputs: usize,
    /// The checkpoint's own head is kept (else a fresh one is drawn with [`HEAD_SEED`]).
    pub keep: bool,
    /// The backbone keeps its pooler (transformers' token and span heads have none).
    pub pooler: bool,
}

/// What a backbone with a head is built from: the tensors its `VarBuilder` reads, its
/// trainable parameters, and for LoRA the settings and the adapted layers.
pub struct EncoderParams {
    pub tensors: HashMap<String, Tensor>,
    pub params: Vec<(String, Var)>,
    pub lora: Option<EncoderLora>,
}

/// A LoRA run's settings (the head among the modules saved whole) and the layers it adapts.
pub type EncoderLora = (tasklm_train::LoraTraining, Vec<String>);

/// The backbone in `tensors` plus `head`: every tensor trainable, or with `lora` (defaults
/// filled in) adapters on the targeted layers and the head trained in full, the rest frozen.
pub fn backbone_and_head(
    tensors: HashMap<String, Tensor>,
    cfg: &BertConfig,
    head: &HeadSpec,
    lora: Option<&tasklm_train::LoraTraining>,
) -> Result<EncoderParams> {
    let tensors = backbone_and_head_tensors(tensors, cfg, head)?;
    let Some(lora) = lora else {
        let params = trainable(tensors)?;
        return Ok(EncoderParams {
            tensors: tensor_map(&params),
            params,
            lora: None,
        });
    };
    if lora.quantized_base {
        return Err(crate::TaskError::Invalid(
            "--quantized keeps a GGUF decoder's base quantized; an encoder has no GGUF base".into(),
        ));
    }
    let mut lora = lora.clone();
    if !lora.modules_to_save.iter().any(|m| m == head.name) {
        // As PEFT's SEQ_CLS / TOKEN_CLS / QUESTION_ANS: the (fresh) head trains in full.
        lora.modules_to_save.push(head.name.to_string());
    }
    let linear = tasklm_nn::linear_layer_names(tensors.clone(), DType::F32, &Device::Cpu, |vb| {
        Bert::new(cfg, vb.pp(BERT_PREFIX))
    })?;
    let layers = tasklm_train::lora::select_targets(&linear, &lora)?;
    let p = tasklm_train::lora::lora_params(
        tensors,
        &mut tasklm_nn::QuantizedWeights::new(),
        layers,
        &lora,
    )?;
    Ok(EncoderParams {
        tensors: p.tensors,
        params: p.params,
        lora: Some((lora, p.layers)),
    })
}

/// The backbone's tensors (without the pooler when the head has none) and the head's, kept
/// or fresh.
fn backbone_and_head_tensors(
    mut tensors: HashMap<String, Tensor>,
    cfg: &BertConfig,
    head: &HeadSpec,
) -> Result<HashMap<String, Tensor>> {
    let pooler = format!("{BERT_PREFIX}.pooler.");
    let head_prefix = format!("{}.", head.name);
    tensors.retain(|k, _| {
        (k.starts_with(BERT_PREFIX) && (head.pooler || !k.starts_with(&pooler)))
            || (head.keep && k.starts_with(&head_prefix))
    });
    if !head.keep {
        tensors.extend(fresh_linear(
            head.name,
            (head.outputs, cfg.hidden_size),
            cfg.initializer_range,
            HEAD_SEED,
        )?);
    }
    Ok(tensors)
}

/// Every tensor of `tensors` as a trainable f32 variable, sorted by name.
pub fn trainable(tensors: HashMap<String, Tensor>) -> Result<Vec<(String, Var)>> {
    let mut params: Vec<(String, Var)> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, Var::from_tensor(&t.to_dtype(DType::F32)?)?)))
        .collect::<Result<_>>()?;
    params.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(params)
}

/// The tensors behind `params`, by name, for a `VarBuilder`.
pub fn tensor_map(params: &[(String, Var)]) -> HashMap<String, Tensor> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

/// A fresh linear head `{name}.weight` (out, in) ~ N(0, std) and a zero `{name}.bias`, as
/// transformers initialises one, drawn from `seed`.
pub fn fresh_linear(
    name: &str,
    (out, inp): (usize, usize),
    std: f64,
    seed: u64,
) -> Result<Vec<(String, Tensor)>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    if !(std.is_finite() && std > 0.0) {
        return Err(TaskError::Invalid(format!(
            "initializer_range {std}: expected a positive number"
        )));
    }
    // Box-Muller: two uniforms give one standard normal.
    let w: Vec<f32> = (0..out * inp)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect();
    Ok(vec![
        (
            format!("{name}.weight"),
            Tensor::from_vec(w, (out, inp), &Device::Cpu)?,
        ),
        (
            format!("{name}.bias"),
            Tensor::zeros(out, DType::F32, &Device::Cpu)?,
        ),
    ])
}

/// An encoder with a linear head (`classifier`) over its labels: the pooled vector for
/// sequence classification, every token for token classification.
pub struct HeadedEncoder {
    pub bert: Bert,
    pub head: ClassifierHead,
    params: Vec<(String, Var)>,
    /// A LoRA run's settings and adapted layers.
    pub lora: Option<EncoderLora>,
    pub encoder: PairEncoder,
    pub labels: Vec<String>,
    pub pad_id: u32,
    /// The head came from the checkpoint (false: freshly initialised).
    pub trained_head: bool,
    pub ck_config: serde_json::Value,
    pub ck_dir: std::path::PathBuf,
}

impl HeadedEncoder {
    /// Builds the model over `ck`. Its own head is kept when its labels are `labels` (or
    /// `labels` is None); otherwise a fresh head for `labels` is drawn. `task` names the
    /// training command in the error for a checkpoint without a head.
    pub fn new(
        ck: EncoderCheckpoint,
        labels: Option<Vec<String>>,
        max_len: usize,
        task: TaskKind,
        lora: Option<&tasklm_train::LoraTraining>,
    ) -> Result<Self> {
        let own = ck.labels();
        let has_head = ck.tensors.contains_key("classifier.weight");
        let (labels, keep_head) = match (labels, own) {
            (None, Some(own)) if has_head => (own, true),
            (Some(want), Some(own)) if has_head && want == own => (own, true),
            (Some(want), _) => (want, false),
            (None, _) => {
                return Err(TaskError::File {
                    path: ck.dir().join("config.json"),
                    msg: format!(
                        "no trained head (no `classifier.weight` and `id2label`): train one \
                         with `tasklm train --task {task}`"
                    ),
                })
            }
        };
        let cfg = ck.config.clone();
        // transformers' token classifier has no pooler: leave it out for tagging.
        let head_spec = HeadSpec {
            name: "classifier",
            outputs: labels.len(),
            keep: keep_head,
            pooler: task != TaskKind::Ner,
        };
        let built = backbone_and_head(ck.tensors, &cfg, &head_spec, lora)?;
        let vb = VarBuilder::from_tensors(built.tensors, DType::F32, &Device::Cpu);
        let bert = Bert::new(&cfg, vb.pp(BERT_PREFIX))?;
        let head = ClassifierHead::new(cfg.hidden_size, labels.len(), cfg.head_dropout(), vb)?;
        let pad_id = ck.tokenizer.pad_id();
        Ok(Self {
            bert,
            head,
            params: built.params,
            lora: built.lora,
            encoder: PairEncoder {
                tokenizer: ck.tokenizer,
                cls_id: ck.cls_id,
                sep_id: ck.sep_id,
                max_len: max_len.min(cfg.max_position_embeddings),
            },
            labels,
            pad_id,
            trained_head: keep_head,
            ck_config: ck.config_json,
            ck_dir: ck.source.path().to_path_buf(),
        })
    }

    /// The trainable parameters, by `model.safetensors` name.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::longest_first;

    #[test]
    fn longest_first_cuts_the_longer_text_first() {
        assert_eq!(longest_first(5, 3, 10), (5, 3), "fits: nothing cut");
        assert_eq!(
            longest_first(20, 3, 10),
            (7, 3),
            "the short one is kept whole"
        );
        assert_eq!(longest_first(3, 20, 10), (3, 7));
        assert_eq!(longest_first(20, 30, 10), (5, 5), "both long: halves");
        assert_eq!(
            longest_first(30, 20, 11),
            (6, 5),
            "the longer gets the odd token"
        );
    }
}
