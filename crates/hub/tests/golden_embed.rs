//! all-minilm-l6-v2 sentence embeddings against sentence-transformers' `encode` on 100 SQuAD
//! questions (`scripts/golden/embeddings.py`): cosine >= 1 - 1e-5 for every sentence, embedded
//! in batches (as the fixture was, and at another batch size, so padding differs) and alone.

use candle_core::Device;
use std::path::Path;
use tasklm_hub::embed::cosine;
use tasklm_hub::{Embedder, ModelSource};

const TOLERANCE: f32 = 1e-5;

fn fixture() -> (Vec<String>, Vec<Vec<f32>>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("minilm_embeddings.json")).unwrap())
            .unwrap();
    let sentences: Vec<String> = meta["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let tensors =
        candle_core::safetensors::load(dir.join("minilm_embeddings.safetensors"), &Device::Cpu)
            .unwrap();
    let expected = tensors["embeddings"].to_vec2::<f32>().unwrap();
    assert_eq!(sentences.len(), 100);
    assert_eq!(expected.len(), 100);
    (sentences, expected)
}

fn check(label: &str, got: &[Vec<f32>], expected: &[Vec<f32>]) {
    let mut worst = 1.0f32;
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.len(), e.len());
        worst = worst.min(cosine(g, e));
    }
    eprintln!("{label}: lowest cosine {worst}");
    assert!(worst >= 1.0 - TOLERANCE, "{label}: cosine {worst}");
    // Normalised, as the model's Normalize module makes them.
    for g in got {
        let norm = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = tasklm_hub::testing::catalog_model("all-minilm-l6-v2").unwrap() else {
        return;
    };
    let e = Embedder::load(&ModelSource::HfDir(dir)).unwrap();
    assert_eq!(e.max_len, 256, "sentence_bert_config.json's max_seq_length");
    let (sentences, expected) = fixture();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    check(
        "batches of 32",
        &e.embed_texts(&refs, 32).unwrap(),
        &expected,
    );
    check("batches of 7", &e.embed_texts(&refs, 7).unwrap(), &expected);
    let alone: Vec<Vec<f32>> = refs
        .iter()
        .map(|s| e.embed_texts(&[s], 1).unwrap().remove(0))
        .collect();
    check("alone", &alone, &expected);
}
