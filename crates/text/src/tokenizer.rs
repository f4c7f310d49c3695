//! The tokenizer every task uses: ids, character offsets, special tokens, decoding.

use crate::{GgufVocab, Result, TextError};
use serde_json::Value;
use std::path::Path;
use tokenizers::Tokenizer;

/// Token ids with each token's (start, end) character offsets into the text.
pub type IdsWithOffsets = (Vec<u32>, Vec<(usize, usize)>);

/// A tokenizer with the special tokens and chat template of its model.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    /// Tokens that end generation (EOS, and e.g. `<|endoftext|>` or `<|im_end|>`).
    pub eos_ids: Vec<u32>,
    pub chat_template: Option<String>,
}

/// The contents of a model directory's tokenizer files ([`TextTokenizer::from_files`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenizerFiles<'a> {
    /// `tokenizer.json`.
    pub tokenizer_json: &'a [u8],
    /// `tokenizer_config.json`, when present.
    pub tokenizer_config: Option<&'a str>,
    /// `chat_template.jinja`, used when `tokenizer_config.json` has no `chat_template`.
    pub chat_template_jinja: Option<&'a str>,
    /// `generation_config.json`, when present (ignored when not valid JSON).
    pub generation_config: Option<&'a str>,
}

/// Parses a `tokenizer.json`. tokenizers 0.23 panics on some malformed files (an `expect`
/// in its decoder deserializer): the panic becomes this call's error.
pub(crate) fn tokenizer_from_json(json: &[u8]) -> std::result::Result<Tokenizer, String> {
    std::panic::catch_unwind(|| Tokenizer::from_bytes(json))
        .map_err(|p| {
            let msg = crate::error::panic_message(p.as_ref());
            format!("the tokenizers crate panicked reading it ({msg})")
        })?
        .map_err(|e| e.to_string())
}

/// Runs a call into the tokenizers crate, turning its panic (possible with a hostile
/// `tokenizer.json`, whose pipeline runs here) into an error.
fn guarded<T>(f: impl FnOnce() -> tokenizers::Result<T>) -> std::result::Result<T, TextError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| TextError::Tokenizer("the tokenizers crate panicked on this input".into()))?
        .map_err(|e| TextError::Tokenizer(e.to_string()))
}

/// A special token in `tokenizer_config.json` is a string or `{"content": ...}`.
pub(crate) fn token_field(cfg: &Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (padding and truncation switched off: tasks pad and truncate
    /// themselves) and, when present beside it, `tokenizer_config.json`. A Marian (opus-mt)
    /// directory without `tokenizer.json` is read from its SentencePiece files
    /// ([`crate::sentencepiece`]).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let cfg_path = dir.join("tokenizer_config.json");
        let mut config = if cfg_path.exists() {
            Some(std::fs::read_to_string(&cfg_path).map_err(|e| TextError::file(&cfg_path, e))?)
        } else {
            None
        };
        let json = if path.exists() {
            std::fs::read(&path).map_err(|e| TextError::file(&path, e))?
        } else if dir.join("source.spm").exists() {
            let (json, cfg) = Self::marian_json(dir, config.as_deref())?;
            config = Some(cfg);
            json
        } else {
            return Err(TextError::file(
                &path,
                "missing: a model directory needs tokenizer.json (or, for Marian, source.spm \
                 and vocab.json)",
            ));
        };
        let jinja = dir.join("chat_template.jinja");
        let chat_template = jinja
            .exists()
            .then(|| std::fs::read_to_string(&jinja).ok())
            .flatten();
        let generation = std::fs::read_to_string(dir.join("generation_config.json")).ok();
        Self::from_files(
            dir,
            &TokenizerFiles {
                tokenizer_json: &json,
                tokenizer_config: config.as_deref(),
                chat_template_jinja: chat_template.as_deref(),
                generation_config: generation.as_deref(),
            },
        )
    }

    /// The `tokenizer.json` bytes of a Marian directory's SentencePiece files, and its
    /// `tokenizer_config.json` (when given) with MarianTokenizer's default special tokens
    /// filled in.
    fn marian_json(dir: &Path, config: Option<&str>) -> Result<(Vec<u8>, String)> {
        let cfg_path = dir.join("tokenizer_config.json");
        let mut cfg: Value = match config {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| TextError::file(&cfg_path, format!("invalid JSON: {e}")))?,
            None => Value::Null,
        };
        if cfg.get("separate_vocabs") == Some(&Value::Bool(true)) {
            return Err(TextError::file(
                &cfg_path,
                "`separate_vocabs: true` (a target vocabulary of its own) is not supported: \
                 convert the tokenizer to a tokenizer.json per side",
            ));
        }
        let specials = crate::sentencepiece::MarianSpecials::from_config(&cfg);
        let json = crate::sentencepiece::marian_tokenizer_json(dir, &specials)?;
        if !cfg.is_object() {
            cfg = Value::Object(Default::default());
        }
        for (k, v) in [
            ("eos_token", &specials.eos),
            ("unk_token", &specials.unk),
            ("pad_token", &specials.pad),
        ] {
            cfg[k] = Value::String(v.clone());
        }
        let bytes = serde_json::to_vec(&json).map_err(|e| TextError::Tokenizer(e.to_string()))?;
        Ok((bytes, cfg.to_string()))
    }

    /// [`Self::from_dir`] over the files' contents, already in memory; `dir` names them in
    /// errors.
    pub fn from_files(dir: &Path, files: &TokenizerFiles<'_>) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let mut inner =
            tokenizer_from_json(files.tokenizer_json).map_err(|e| TextError::file(&path, e))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TextError::file(&path, e))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Value = match files.tokenizer_config {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| TextError::file(&cfg_path, format!("invalid JSON: {e}")))?,
            None => Value::Null,
        };
        let chat_template = match cfg.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => files.chat_template_jinja.map(String::from),
        };
        let mut tok = Self {
            inner,
            bos_token: token_field(&cfg, "bos_token"),
            eos_token: token_field(&cfg, "eos_token"),
            pad_token: token_field(&cfg, "pad_token"),
            eos_ids: Vec::new(),
            chat_template,
        };
        tok.eos_ids = tok
            .eos_token
            .iter()
            .filter_map(|t| tok.token_to_id(t))
            .collect();
        // generation_config.json may name more stop tokens (an int or a list).
        if let Some(gen) = files
            .generation_config
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
        {
            let ids: Vec<u32> = match gen.get("eos_token_id") {
                Some(Value::Number(n)) => n.as_u64().into_iter().map(|i| i as u32).collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_u64().map(|i| i as u32))
                    .collect(),
                _ => Vec::new(),
            };
            for id in ids {
                if !tok.eos_ids.contains(&id) && (id as usize) < tok.vocab_size() {
                    tok.eos_ids.push(id);
                }
            }
        }
        Ok(tok)
    }

    /// Builds the tokenizer a GGUF file describes.
    pub fn from_gguf(vocab: &GgufVocab) -> Result<Self> {
        let inner = vocab.build()?;
        let name = |id: Option<u32>| id.and_then(|i| vocab.tokens.get(i as usize)).cloned();
        let mut eos_ids: Vec<u32> = vocab.eos_id.into_iter().collect();
        // Base-model files end documents with <|endoftext|>; treat it as a stop token too.
        if let Some(id) = inner.token_to_id("<|endoftext|>") {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        Ok(Self {
            inner,
            bos_token: name(vocab.bos_id),
            eos_token: name(vocab.eos_id),
            pad_token: name(vocab.pad_id),
            eos_ids,
            chat_template: vocab.chat_template.clone(),
        })
    }

    /// Adds special tokens (never split, kept whole), e.g. `<s>`/`</s>` for a template that
    /// names tokens the vocabulary lacks.
    pub fn add_special_tokens(&mut self, tokens: &[&str]) -> Result<()> {
        let added: Vec<tokenizers::AddedToken> = tokens
            .iter()
            .map(|t| tokenizers::AddedToken::from(t.to_string(), true))
            .collect();
        self.inner
            .add_special_tokens(added)
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        Ok(())
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Token ids of `text`; `add_special` applies the model's post-processor (e.g. BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        Ok(guarded(|| self.inner.encode(text, add_special))?
            .get_ids()
            .to_vec())
    }

    /// Token ids and their (start, end) character offsets into `text`.
    pub fn encode_with_offsets(&self, text: &str, add_special: bool) -> Result<IdsWithOffsets> {
        let enc = guarded(|| self.inner.encode_char_offsets(text, add_special))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        guarded(|| self.inner.decode(ids, skip_special))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The raw bytes token `id` stands for (byte-level BPE tokens are mapped back through
    /// GPT-2's byte alphabet, so a token holding half of a UTF-8 character gives its byte).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(tok) = self.id_to_token(id) else {
            return Vec::new();
        };
        let decoder = crate::gguf_vocab::unicode_to_bytes();
        let bytes: Option<Vec<u8>> = tok.chars().map(|c| decoder.get(&c).copied()).collect();
        bytes.unwrap_or_else(|| tok.into_bytes())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id used to pad batches: the pad token, else EOS, else 0.
    pub fn pad_id(&self) -> u32 {
        self.pad_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
            .or_else(|| self.eos_ids.first().copied())
            .unwrap_or(0)
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDLEVEL: &str = r#"{"version":"1.0","added_tokens":[{"id":3,"content":"</s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2,"</s>":3},"unk_token":"[UNK]"}}"#;

    #[test]
    fn from_files_reads_the_tokenizer_and_its_configs_from_memory() -> Result<()> {
        let files = TokenizerFiles {
            tokenizer_json: WORDLEVEL.as_bytes(),
            tokenizer_config: Some(
                r#"{"eos_token": {"content": "</s>"}, "chat_template": "{{ x }}"}"#,
            ),
            chat_template_jinja: Some("unused: the config has one"),
            generation_config: Some(r#"{"eos_token_id": [2, 4000000000]}"#),
        };
        let tok = TextTokenizer::from_files(Path::new("m"), &files)?;
        assert_eq!(tok.encode("hello world nope", false)?, [1, 2, 0]);
        assert_eq!(tok.eos_ids, [3, 2]);
        assert_eq!(tok.chat_template.as_deref(), Some("{{ x }}"));
        let bad = TokenizerFiles {
            tokenizer_json: b"{\"model\": 3}",
            ..files
        };
        let err = TextTokenizer::from_files(Path::new("m"), &bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("m/tokenizer.json: "), "{err}");
        let bad_cfg = TokenizerFiles {
            tokenizer_config: Some("{"),
            ..files
        };
        let err = TextTokenizer::from_files(Path::new("m"), &bad_cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("tokenizer_config.json: invalid JSON"), "{err}");
        Ok(())
    }

    #[test]
    fn a_tokenizer_json_that_panicked_the_tokenizers_crate_is_an_error() {
        // Found by fuzzing (fuzz/regressions): tokenizers 0.23 `expect`s in its decoder
        // deserializer. The file is tokenizer.json NUL tokenizer_config.json NUL ...
        let bytes = include_bytes!("../../../fuzz/regressions/tokenizer_decoder_panic.bin");
        let json = bytes.split(|&b| b == 0).next().unwrap_or_default();
        let files = TokenizerFiles {
            tokenizer_json: json,
            ..TokenizerFiles::default()
        };
        let err = TextTokenizer::from_files(Path::new("m"), &files)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("m/tokenizer.json: "), "{err}");
    }

    #[test]
    fn a_tokenizer_that_panics_while_encoding_gives_an_error() -> Result<()> {
        // Found by fuzzing (fuzz/regressions): a hostile pipeline that loads, then panics
        // inside the tokenizers crate on one of the fuzz target's texts.
        let bytes = include_bytes!("../../../fuzz/regressions/tokenizer_encode_panic.bin");
        let mut parts = bytes.splitn(3, |&b| b == 0);
        let files = TokenizerFiles {
            tokenizer_json: parts.next().unwrap_or_default(),
            tokenizer_config: parts.next().and_then(|p| std::str::from_utf8(p).ok()),
            chat_template_jinja: None,
            generation_config: parts.next().and_then(|p| std::str::from_utf8(p).ok()),
        };
        let Ok(tok) = TextTokenizer::from_files(Path::new("m"), &files) else {
            return Ok(());
        };
        for text in ["Hello, world!", "  naïve café — 東京 🙂\n\tend", ""] {
            for special in [false, true] {
                if let Ok((ids, offsets)) = tok.encode_with_offsets(text, special) {
                    assert_eq!(ids.len(), offsets.len());
                    let _ = tok.decode(&ids, true);
                }
            }
        }
        Ok(())
    }
}
