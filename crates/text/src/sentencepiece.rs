//! Marian (opus-mt) tokenizer files read as a `tokenizer.json`: a SentencePiece model
//! (`source.spm`, a protobuf) whose pieces are numbered by `vocab.json`, as transformers'
//! `MarianTokenizer` numbers them.
//!
//! The pipeline is transformers' `SpmConverter.build_tokenizer_from_spm_proto` (which encodes as
//! `SentencePieceProcessor.encode` does): the model's precompiled normalization map, extra
//! spaces removed, spaces escaped to `▁` with a dummy prefix, a Unigram model over the pieces
//! (scores from the SentencePiece model, ids from `vocab.json`), `</s>` appended; decoding joins
//! the pieces and turns `▁` back into spaces. `vocab.json` entries written `>>xx<<` (the target
//! language codes of multilingual models) are matched whole, as `MarianTokenizer` splits them
//! off the front of a text.
//!
//! Limits (errors, not guesses): only Unigram SentencePiece models; only the shared vocabulary
//! (`separate_vocabs` is refused). Pieces of the SentencePiece model that `vocab.json` lacks are
//! left out of the lattice (MarianTokenizer would map them to `<unk>`); opus-mt vocabularies
//! hold every piece. Sources are encoded with `source.spm`; the target side (`target.spm`) only
//! matters for encoding training targets, which tasklm does not do with these files.

use crate::{Result, TextError};
use serde_json::{json, Map, Value};
use std::path::Path;

/// A piece's type in the SentencePiece model (`SentencePiece.Type`).
const NORMAL: u64 = 1;
const USER_DEFINED: u64 = 4;

/// What tasklm reads of a SentencePiece `ModelProto`.
#[derive(Debug, Default)]
pub struct SpmModel {
    /// (piece, score, type).
    pub pieces: Vec<(String, f32, u64)>,
    /// 1 Unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    pub byte_fallback: bool,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

/// One protobuf field: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("a field of {n} bytes runs past the end"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn next(&mut self) -> std::result::Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn fields(buf: &[u8], mut f: impl FnMut(u64, Field<'_>)) -> std::result::Result<(), String> {
    let mut r = Reader { buf, pos: 0 };
    while let Some((n, field)) = r.next()? {
        f(n, field);
    }
    Ok(())
}

/// Parses a SentencePiece `ModelProto` (sentencepiece_model.proto: pieces 1, trainer_spec 2
/// with model_type 3 and byte_fallback 35, normalizer_spec 3 with precompiled_charsmap 2,
/// add_dummy_prefix 3, remove_extra_whitespaces 4, escape_whitespaces 5).
pub fn parse_spm(bytes: &[u8]) -> std::result::Result<SpmModel, String> {
    let mut m = SpmModel {
        model_type: 1,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        escape_whitespaces: true,
        ..SpmModel::default()
    };
    let mut err = None;
    fields(bytes, |n, field| {
        let r = match (n, field) {
            (1, Field::Bytes(b)) => {
                let (mut piece, mut score, mut kind) = (None, 0f32, NORMAL);
                let r = fields(b, |n, f| match (n, f) {
                    (1, Field::Bytes(s)) => piece = Some(String::from_utf8_lossy(s).into_owned()),
                    (2, Field::Fixed32(x)) => score = f32::from_bits(x),
                    (3, Field::Varint(t)) => kind = t,
                    _ => {}
                });
                match (r, piece) {
                    (Ok(()), Some(p)) => {
                        m.pieces.push((p, score, kind));
                        Ok(())
                    }
                    (Ok(()), None) => Err("a piece without its text".to_string()),
                    (Err(e), _) => Err(e),
                }
            }
            (2, Field::Bytes(b)) => fields(b, |n, f| match (n, f) {
                (3, Field::Varint(t)) => m.model_type = t,
                (35, Field::Varint(t)) => m.byte_fallback = t != 0,
                _ => {}
            }),
            (3, Field::Bytes(b)) => fields(b, |n, f| match (n, f) {
                (2, Field::Bytes(c)) => m.precompiled_charsmap = c.to_vec(),
                (3, Field::Varint(t)) => m.add_dummy_prefix = t != 0,
                (4, Field::Varint(t)) => m.remove_extra_whitespaces = t != 0,
                (5, Field::Varint(t)) => m.escape_whitespaces = t != 0,
                _ => {}
            }),
            _ => Ok(()),
        };
        if let (Err(e), None) = (r, &err) {
            err = Some(e);
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if m.pieces.is_empty() {
        return Err("no pieces: not a SentencePiece model".into());
    }
    Ok(m)
}

/// Standard base64 (with padding), as tokenizer.json stores the precompiled charsmap.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn replace(pattern: Value, content: &str) -> Value {
    json!({"type": "Replace", "pattern": pattern, "content": content})
}

/// The `tokenizer.json` (as JSON) of a Marian directory's `source.spm` and `vocab.json`, with
/// `eos`, `unk` and `pad` as its special tokens.
pub fn marian_tokenizer_json(dir: &Path, specials: &MarianSpecials) -> Result<Value> {
    let spm_path = dir.join("source.spm");
    let bytes = std::fs::read(&spm_path).map_err(|e| TextError::file(&spm_path, e))?;
    let spm = parse_spm(&bytes).map_err(|e| TextError::file(&spm_path, e))?;
    if spm.model_type != 1 {
        return Err(TextError::file(
            &spm_path,
            format!(
                "SentencePiece model type {} (2 BPE, 3 word, 4 char): only Unigram models \
                 (type 1, as opus-mt's) are read",
                spm.model_type
            ),
        ));
    }
    let vocab_path = dir.join("vocab.json");
    let text = std::fs::read_to_string(&vocab_path).map_err(|e| TextError::file(&vocab_path, e))?;
    let vocab: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
        TextError::file(&vocab_path, format!("expected a {{piece: id}} object: {e}"))
    })?;
    let mut by_id: Vec<Option<&str>> = Vec::new();
    for (piece, id) in &vocab {
        let id = id.as_u64().ok_or_else(|| {
            TextError::file(
                &vocab_path,
                format!("`{piece}`: the id {id} is not an integer"),
            )
        })? as usize;
        if id >= by_id.len() {
            by_id.resize(id + 1, None);
        }
        if let Some(other) = by_id[id].replace(piece) {
            return Err(TextError::file(
                &vocab_path,
                format!("`{other}` and `{piece}` share the id {id}"),
            ));
        }
    }
    if let Some(gap) = by_id.iter().position(Option::is_none) {
        return Err(TextError::file(
            &vocab_path,
            format!("no piece has the id {gap}: ids must run from 0 without gaps"),
        ));
    }
    let id_of = |t: &str, what: &str| {
        vocab.get(t).and_then(Value::as_u64).ok_or_else(|| {
            TextError::file(
                &vocab_path,
                format!("no `{t}` ({what} token) in the vocabulary"),
            )
        })
    };
    let unk = id_of(&specials.unk, "unknown")?;
    let eos = id_of(&specials.eos, "end-of-sequence")?;
    // Scores of the pieces the lattice may use; every other entry (control pieces, pad,
    // language codes) scores below them all, so it never wins over the model's own pieces.
    let scores: std::collections::HashMap<&str, f32> = spm
        .pieces
        .iter()
        .filter(|p| p.2 == NORMAL || p.2 == USER_DEFINED)
        .map(|p| (p.0.as_str(), p.1))
        .collect();
    let floor = scores.values().copied().fold(0f32, f32::min) - 10.0;
    let model_vocab: Vec<Value> = by_id
        .iter()
        .map(|p| {
            let p = p.unwrap_or_default();
            json!([p, scores.get(p).copied().unwrap_or(floor)])
        })
        .collect();
    let mut added = Vec::new();
    for (id, piece) in by_id.iter().enumerate() {
        let piece = piece.unwrap_or_default();
        let special = [&specials.eos, &specials.unk, &specials.pad].contains(&&piece.to_string());
        let code = piece.starts_with(">>") && piece.ends_with("<<");
        if special || code {
            added.push(json!({"id": id, "content": piece, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": special}));
        }
    }
    let mut norm = Vec::new();
    if !spm.precompiled_charsmap.is_empty() {
        norm.push(json!({"type": "Precompiled",
            "precompiled_charsmap": base64(&spm.precompiled_charsmap)}));
    }
    if spm.remove_extra_whitespaces {
        norm.push(replace(json!({"Regex": r"\A +| +\z"}), ""));
        norm.push(replace(json!({"Regex": " {2,}"}), " "));
    }
    if spm.escape_whitespaces {
        norm.push(replace(json!({"String": " "}), "\u{2581}"));
    }
    let mut pre = Value::Null;
    let mut dec = vec![replace(json!({"String": "\u{2581}"}), " ")];
    if spm.add_dummy_prefix {
        norm.push(replace(json!({"Regex": "\\A\u{2581}"}), "\u{2581}\u{2581}"));
        pre = json!({"type": "Metaspace", "replacement": "\u{2581}",
            "prepend_scheme": "always", "split": false});
        dec.push(json!({"type": "Fuse"}));
        dec.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let eos_t = &specials.eos;
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": norm},
        "pre_tokenizer": pre,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": eos_t, "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": eos_t, "type_id": 0}}],
            "special_tokens": {eos_t.as_str(): {"id": eos_t, "ids": [eos], "tokens": [eos_t]}}
        },
        "decoder": {"type": "Sequence", "decoders": dec},
        "model": {"type": "Unigram", "unk_id": unk, "vocab": model_vocab,
                  "byte_fallback": spm.byte_fallback}
    }))
}

/// `MarianTokenizer`'s special tokens (its defaults, or `tokenizer_config.json`'s).
#[derive(Clone, Debug)]
pub struct MarianSpecials {
    pub eos: String,
    pub unk: String,
    pub pad: String,
}

impl MarianSpecials {
    /// From `tokenizer_config.json` (`Value::Null` when there is none), with MarianTokenizer's
    /// defaults `</s>`, `<unk>`, `<pad>`.
    pub fn from_config(cfg: &Value) -> Self {
        let get = |k: &str, d: &str| crate::tokenizer::token_field(cfg, k).unwrap_or(d.into());
        Self {
            eos: get("eos_token", "</s>"),
            unk: get("unk_token", "<unk>"),
            pad: get("pad_token", "<pad>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_as_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x10]), "//4AEA==");
    }

    #[test]
    fn protobuf_pieces_and_specs_are_read() {
        // pieces {piece "a" score 0.5 type 1}, trainer_spec {model_type 2}, normalizer_spec
        // {add_dummy_prefix false}.
        let mut piece = vec![0x0a, 1, b'a', 0x15];
        piece.extend(0.5f32.to_le_bytes());
        piece.extend([0x18, 1]);
        let mut buf = vec![0x0a, piece.len() as u8];
        buf.extend(&piece);
        buf.extend([0x12, 2, 0x18, 2, 0x1a, 2, 0x18, 0]);
        let m = parse_spm(&buf).unwrap();
        assert_eq!(m.pieces, vec![("a".to_string(), 0.5, 1)]);
        assert_eq!(m.model_type, 2);
        assert!(!m.add_dummy_prefix && m.remove_extra_whitespaces);
        assert!(parse_spm(&[0x0a, 5, 1]).is_err(), "a truncated field");
        assert!(parse_spm(&[]).is_err(), "no pieces");
    }
}
