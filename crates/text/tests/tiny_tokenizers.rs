//! The tiny fixtures' tokenizers (a byte-level BPE and a WordPiece, trained by
//! `scripts/golden/tiny_models.py`) give transformers' ids, decode back, and the decoder's chat
//! template renders as transformers renders it.

use serde_json::Value;
use std::path::PathBuf;
use tasklm_text::{ChatMessage, ChatTemplate, TextTokenizer};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn golden() -> Result<Value> {
    let text = std::fs::read_to_string(fixtures().join("tiny_tokenizers.json"))?;
    Ok(serde_json::from_str(&text)?)
}

fn ids(v: &Value) -> Result<Vec<u32>> {
    v.as_array()
        .ok_or("ids: not an array")?
        .iter()
        .map(|x| {
            x.as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| format!("id {x} out of range").into())
        })
        .collect()
}

fn texts(v: &Value) -> Result<Vec<(String, Vec<u32>)>> {
    v["texts"]
        .as_array()
        .ok_or("texts: not an array")?
        .iter()
        .map(|t| {
            Ok((
                t["text"].as_str().ok_or("text")?.to_string(),
                ids(&t["ids"])?,
            ))
        })
        .collect()
}

#[test]
fn byte_level_bpe_matches_transformers_and_round_trips() -> Result<()> {
    let g = golden()?;
    let tok = TextTokenizer::from_dir(&fixtures().join("tiny_decoder"))?;
    assert_eq!(tok.eos_token.as_deref(), Some("<|im_end|>"));
    assert_eq!(tok.pad_token.as_deref(), Some("<|endoftext|>"));
    assert_eq!(tok.eos_ids, vec![2]);
    assert_eq!(tok.pad_id(), 0);
    for (text, want) in texts(&g["decoder"])? {
        let got = tok.encode(&text, true)?;
        assert_eq!(got, want, "ids of {text:?}");
        assert_eq!(
            tok.decode(&got, false)?,
            text,
            "byte-level BPE decodes exactly"
        );
    }
    let chat = &g["decoder"]["chat"];
    let messages: Vec<ChatMessage> = chat["messages"]
        .as_array()
        .ok_or("messages")?
        .iter()
        .map(|m| {
            Ok(ChatMessage::new(
                m[0].as_str().ok_or("role")?,
                m[1].as_str().ok_or("content")?,
            ))
        })
        .collect::<Result<_>>()?;
    let template = ChatTemplate::new(
        tok.chat_template
            .as_deref()
            .ok_or("the decoder has a chat template")?,
        "",
        "<|im_end|>",
    )?;
    let rendered = template.render(&messages, false)?;
    assert_eq!(rendered, chat["rendered"].as_str().ok_or("rendered")?);
    assert_eq!(tok.encode(&rendered, true)?, ids(&chat["ids"])?);
    Ok(())
}

#[test]
fn wordpiece_matches_transformers_single_and_paired() -> Result<()> {
    let g = golden()?;
    let tok = TextTokenizer::from_dir(&fixtures().join("tiny_encoder"))?;
    for (text, want) in texts(&g["encoder"])? {
        assert_eq!(tok.encode(&text, true)?, want, "ids of {text:?}");
    }
    let pair = &g["encoder"]["pair"];
    let enc = tok
        .inner()
        .encode(
            (
                pair["a"].as_str().ok_or("a")?,
                pair["b"].as_str().ok_or("b")?,
            ),
            true,
        )
        .map_err(|e| e.to_string())?;
    assert_eq!(enc.get_ids(), ids(&pair["ids"])?.as_slice());
    assert_eq!(enc.get_type_ids(), ids(&pair["token_type_ids"])?.as_slice());
    assert!(tok.token_to_id("[CLS]").is_some() && tok.token_to_id("[SEP]").is_some());
    Ok(())
}
