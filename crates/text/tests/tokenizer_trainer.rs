//! `tasklm tokenizer train` against transformers: the fixture holds the ids that
//! `AutoTokenizer.from_pretrained` gave for probe sentences on the directories tasklm wrote
//! (scripts/golden/tokenizer_trainer.py); retraining on the same corpus must give the same ids.

use anyhow::Result;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tasklm_text::trainer::{save_trained, train_tokenizer, SubwordKind, TrainerOptions};
use tasklm_text::TextTokenizer;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer_trainer")
}

#[test]
fn trained_tokenizers_encode_as_transformers_does() -> Result<()> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json"))?)?;
    let probes: Vec<String> = serde_json::from_value(expected["probes"].clone())?;
    for (name, kind) in [("unigram", SubwordKind::Unigram), ("bpe", SubwordKind::Bpe)] {
        let want = &expected["tokenizers"][name];
        let opts = TrainerOptions {
            kind,
            vocab_size: want["vocab_size"].as_u64().unwrap_or_default() as usize,
            ..TrainerOptions::default()
        };
        let (tokenizer, lines) = train_tokenizer(&[fixture().join("corpus.txt")], &opts)?;
        assert_eq!(lines, 600);
        let dir = tempfile::tempdir()?;
        save_trained(&tokenizer, kind, dir.path())?;
        let loaded = TextTokenizer::from_dir(dir.path())?;
        assert_eq!(
            loaded.vocab_size() as u64,
            want["hf_vocab_size"].as_u64().unwrap_or_default(),
            "{name}"
        );
        for (i, special) in kind.special_tokens().iter().enumerate() {
            assert_eq!(
                loaded.token_to_id(special),
                Some(i as u32),
                "{name} {special}"
            );
            assert_eq!(
                want["special"][special].as_u64(),
                Some(i as u64),
                "{name} {special}"
            );
        }
        for (i, probe) in probes.iter().enumerate() {
            let ids = loaded.encode(probe, true)?;
            let hf: Vec<u32> = serde_json::from_value(want["ids"][i].clone())?;
            assert_eq!(ids, hf, "{name}: {probe:?}");
            assert_eq!(
                ids.last(),
                loaded.token_to_id("</s>").as_ref(),
                "ends with </s>"
            );
            let decoded = loaded.decode(&ids, true)?;
            assert_eq!(
                decoded,
                want["decoded"][i].as_str().unwrap_or_default(),
                "{name}"
            );
        }
    }
    Ok(())
}

#[test]
fn bad_inputs_are_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n  \n")?;
    let opts = TrainerOptions::default();
    let e = train_tokenizer(std::slice::from_ref(&empty), &opts)
        .expect_err("no text")
        .to_string();
    assert!(e.contains("empty.txt") && e.contains("no text"), "{e}");
    let missing = dir.path().join("missing.txt");
    let e = train_tokenizer(&[missing], &opts)
        .expect_err("missing")
        .to_string();
    assert!(e.contains("missing.txt"), "{e}");
    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, b'\n'])?;
    let e = train_tokenizer(&[binary], &opts)
        .expect_err("not UTF-8")
        .to_string();
    assert!(e.contains("binary.txt") && e.contains("line 1"), "{e}");
    let tiny = TrainerOptions {
        vocab_size: 3,
        ..TrainerOptions::default()
    };
    let e = train_tokenizer(&[empty], &tiny)
        .expect_err("vocab 3")
        .to_string();
    assert!(e.contains("vocab size 3"), "{e}");
    Ok(())
}
