//! A byte-level BPE tokenizer rebuilt from a GGUF file's `tokenizer.ggml.*` metadata, the way
//! transformers builds it (`integrations/gguf/gguf_tokenizer_mapping.py`, v5.24.0):
//! GPT-2's byte-level BPE, control tokens (type 3) as special added tokens, user-defined
//! tokens (type 4) as plain added tokens, and the pre-tokenizer split regex named by
//! `tokenizer.ggml.pre` where transformers knows it.

use crate::{Result, TextError};
use serde_json::json;
use std::collections::HashMap;
use tokenizers::Tokenizer;

/// The tokenizer fields of a GGUF file, independent of any GGUF reader.
#[derive(Clone, Debug, Default)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model` (only `gpt2`, byte-level BPE, is supported).
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split_regex(pre: &str) -> Option<&'static str> {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "smaug-bpe" | "dbrx" | "lfm2"
        | "pixtral" => Some(LLAMA3_SPLIT),
        "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(QWEN2_SPLIT),
        _ => None,
    }
}

/// GPT-2's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> HashMap<u8, char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .map(|(b, c)| (b as u8, char::from_u32(c).unwrap_or('?')))
        .collect()
}

/// The inverse of [`bytes_to_unicode`].
pub(crate) fn unicode_to_bytes() -> &'static HashMap<char, u8> {
    static MAP: std::sync::OnceLock<HashMap<char, u8>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        bytes_to_unicode()
            .into_iter()
            .map(|(b, c)| (c, b))
            .collect()
    })
}

impl GgufVocab {
    /// Builds the tokenizer transformers would build from the same file.
    pub fn build(&self) -> Result<Tokenizer> {
        if self.model != "gpt2" {
            return Err(TextError::Tokenizer(format!(
                "GGUF tokenizer model `{}` is not supported (supported: gpt2 byte-level BPE)",
                self.model
            )));
        }
        let spelling = bytes_to_unicode();
        let alphabet: std::collections::HashSet<char> = spelling.values().copied().collect();
        let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
        let mut vocab = serde_json::Map::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let spelled = if in_alphabet(t) {
                t.clone()
            } else {
                t.bytes().map(|b| spelling[&b]).collect()
            };
            vocab.insert(spelled, json!(i));
        }
        let merges: Vec<serde_json::Value> = self
            .merges
            .iter()
            .map(|m| {
                let (a, b) = m.split_once(' ').unwrap_or((m.as_str(), ""));
                json!([a, b])
            })
            .collect();
        let mut added = Vec::new();
        for (i, (t, &ty)) in self.tokens.iter().zip(&self.token_types).enumerate() {
            let special = ty == CONTROL && in_alphabet(t);
            if special || ty == USER_DEFINED {
                added.push(
                    json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": !special, "special": special}),
                );
            }
        }
        let pre_tokenizer = match self.pre.as_deref().and_then(split_regex) {
            Some(re) => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
            ]}),
            None => {
                json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
            }
        };
        let bos = self.bos_id.and_then(|i| self.tokens.get(i as usize));
        let post_processor = match (self.add_bos, bos) {
            (true, Some(bos)) => json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos.clone(): {"id": bos, "ids": [self.bos_id], "tokens": [bos]}}}),
            _ => json!({"type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {}}),
        };
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges}
        });
        crate::tokenizer::tokenizer_from_json(spec.to_string().as_bytes())
            .map_err(|e| TextError::Tokenizer(format!("building the GGUF tokenizer: {e}")))
    }
}
