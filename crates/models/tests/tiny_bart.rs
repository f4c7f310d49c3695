//! Golden parity of BART and Marian (one post-norm encoder-decoder with learned or sinusoidal
//! positions) on tiny random models written by `scripts/golden/seq2seq_bart.py`: encoder hidden
//! states, logits (with `final_logits_bias`), the loss with -100 labels and every parameter's
//! gradient against PyTorch (the pad row of the shared table gets none from the embedding
//! lookups, as `nn.Embedding(padding_idx)`); a padded batch against single rows; cached
//! decoding against teacher forcing; clear errors for what is not supported. Tolerances in
//! `common`.

mod common;

use anyhow::Result;
use candle_core::{Device, Tensor};
use common::{build, check_dropout, check_golden, check_padding_and_cache, fixture, load};
use serde_json::json;
use std::path::Path;
use tasklm_models::seq2seq::EncoderDecoder;
use tasklm_models::ModelArchitecture;

#[test]
fn tiny_bart_matches_transformers() -> Result<()> {
    check_golden("tiny_bart")
}

#[test]
fn tiny_marian_matches_transformers() -> Result<()> {
    check_golden("tiny_marian")
}

#[test]
fn padded_batch_equals_single_rows_and_cached_decoding_equals_teacher_forcing() -> Result<()> {
    check_padding_and_cache("tiny_bart")?;
    check_padding_and_cache("tiny_marian")
}

#[test]
fn dropout_is_real_in_training_only() -> Result<()> {
    check_dropout("tiny_bart")?;
    check_dropout("tiny_marian")
}

#[test]
fn marian_starts_from_pad_and_never_generates_it() -> Result<()> {
    let m = load("tiny_marian")?.model;
    assert_eq!(m.architecture(), "MarianMTModel");
    assert_eq!((m.decoder_start(), m.pad_id()), (42, 42));
    assert_eq!(m.never_generated(), vec![42]);
    let b = load("tiny_bart")?.model;
    assert_eq!((b.decoder_start(), b.pad_id()), (2, 1));
    assert!(b.never_generated().is_empty());
    Ok(())
}

#[test]
fn sources_longer_than_the_positions_are_refused() -> Result<()> {
    for name in ["tiny_bart", "tiny_marian"] {
        let m = load(name)?.model;
        assert_eq!(m.max_source_tokens(), Some(32));
        let ids = Tensor::ones((1, 33), candle_core::DType::U32, &Device::Cpu)?;
        let err = m.encode(&ids, &[vec![1; 33]], false).err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("33 tokens are more than the 32 positions")
                && err.contains("max_position_embeddings"),
            "{name}: {err}"
        );
    }
    Ok(())
}

#[test]
fn unsupported_variants_name_what_is_missing() -> Result<()> {
    let base = std::fs::read_to_string(fixture("tiny_marian").join("config.json"))?;
    let path = Path::new("m/config.json");
    let cases = [
        (
            "share_encoder_decoder_embeddings",
            json!(false),
            "separate source and target",
        ),
        (
            "decoder_vocab_size",
            json!(100),
            "`decoder_vocab_size` 100 differs",
        ),
        ("normalize_before", json!(true), "pre-norm blocks"),
        (
            "activation_function",
            json!("tanh"),
            "expected one of gelu, gelu_new",
        ),
    ];
    for (key, value, want) in cases {
        let mut cfg: serde_json::Value = serde_json::from_str(&base)?;
        cfg[key] = value;
        let arch = ModelArchitecture::from_config(&cfg, path)?;
        let err = arch.parse_config(&cfg, path).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("m/config.json: ") && e.contains(want)),
            "{key}: {err:?}"
        );
    }
    // A checkpoint missing a weight names it.
    let dir = fixture("tiny_bart");
    let mut tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    tensors.remove("model.encoder.layernorm_embedding.weight");
    let err = build(&dir, tensors).err().map(|e| format!("{e:#}"));
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("model.encoder.layernorm_embedding.weight")),
        "{err:?}"
    );
    Ok(())
}
