//! A Marian (opus-mt) directory without tokenizer.json is read from its SentencePiece files
//! (`tests/fixtures/tiny_marian_spm`, from `scripts/golden/marian_spm.py`): the ids and decoded
//! text of transformers' `MarianTokenizer` for texts that exercise the SentencePiece normalizer,
//! unknown characters and a language code; clear errors for what cannot be read.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use tasklm_text::TextTokenizer;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_marian_spm")
}

#[test]
fn sentencepiece_files_encode_and_decode_as_marian_tokenizer() -> Result<()> {
    let tok = TextTokenizer::from_dir(&fixture())?;
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("golden.json"))?)?;
    assert_eq!(
        tok.vocab_size() as u64,
        golden["vocab_size"].as_u64().context("size")?
    );
    assert_eq!(tok.eos_ids, vec![0], "</s> from MarianTokenizer's defaults");
    assert_eq!(tok.pad_id(), 60);
    let cases = golden["cases"].as_array().context("cases")?;
    assert!(cases.len() >= 6);
    for case in cases {
        let text = case["text"].as_str().context("text")?;
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone())?;
        let ids = tok.encode(text, true)?;
        assert_eq!(ids, want, "{text:?}");
        assert_eq!(
            tok.decode(&ids, true)?,
            case["decoded"].as_str().context("decoded")?,
            "{text:?}"
        );
    }
    Ok(())
}

#[test]
fn unreadable_sentencepiece_directories_say_why() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    // Neither tokenizer.json nor SentencePiece files.
    let err = TextTokenizer::from_dir(dir).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("tokenizer.json") && e.contains("source.spm")),
        "{err:?}"
    );
    // source.spm that is not a SentencePiece model.
    std::fs::write(dir.join("source.spm"), b"\x0a\x09not much")?;
    std::fs::copy(fixture().join("vocab.json"), dir.join("vocab.json"))?;
    let err = TextTokenizer::from_dir(dir).err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("source.spm")),
        "{err:?}"
    );
    // A vocabulary with a gap in its ids.
    std::fs::copy(fixture().join("source.spm"), dir.join("source.spm"))?;
    std::fs::write(dir.join("vocab.json"), r#"{"</s>": 0, "<unk>": 2}"#)?;
    let err = TextTokenizer::from_dir(dir).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("vocab.json") && e.contains("id 1")),
        "{err:?}"
    );
    // Separate source and target vocabularies.
    std::fs::copy(fixture().join("vocab.json"), dir.join("vocab.json"))?;
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"separate_vocabs": true}"#,
    )?;
    let err = TextTokenizer::from_dir(dir).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("separate_vocabs")),
        "{err:?}"
    );
    Ok(())
}
