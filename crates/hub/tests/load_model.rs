//! `load_model`, the one entry point for every model kind, on the tiny committed fixtures: it
//! dispatches through the registry, builds the model of the checkpoint's kind, and the older
//! entry points (`load_checkpoint`, `load_encoder`, `model_kind`) agree with it.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use tasklm_hub::{
    load_checkpoint, load_encoder, load_model, model_kind, LoadOptions, ModelKind, ModelSource,
};
use tasklm_models::{Bert, EncoderInput, ModelArchitecture, ModelConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A WordPiece tokenizer with the specials an encoder needs.
const WORDPIECE: &str = r###"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
"max_input_chars_per_word":100,"vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"a":4}}}"###;

/// A model directory in the temp dir (one per test: `tag`): the fixture's config and weights
/// plus a tokenizer.
fn model_dir(tag: &str, fixture_name: &str, tokenizer: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tasklm-load-model-{}-{tag}-{fixture_name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(fixture_name).join(f), dir.join(f))?;
    }
    std::fs::write(dir.join("tokenizer.json"), tokenizer)?;
    Ok(dir)
}

fn err_text<T>(r: tasklm_hub::Result<T>) -> String {
    r.err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn a_decoder_directory_loads_as_a_decoder_everywhere() -> Result<()> {
    // Any tokenizer.json loads beside a decoder; the weights do not depend on it.
    let dir = model_dir("decoder", "tiny_llama", WORDPIECE)?;
    let source = ModelSource::HfDir(dir.clone());
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    assert_eq!(ck.kind(), ModelKind::Decoder);
    assert!(matches!(ck.architecture, ModelArchitecture::Decoder(_)));
    assert!(ck.decoder().is_some() && ck.encoder().is_none());
    assert!(ck.encoder_specials.is_none() && ck.labels.is_none());
    assert_eq!(ck.dir(), dir.as_path());
    assert_eq!(model_kind(&source)?, ModelKind::Decoder);

    // The raw decoder checkpoint reads the same tensors and config.
    let raw = load_checkpoint(&source, DType::F32, &Device::Cpu)?;
    assert_eq!(raw.tensors.len(), ck.tensors.len());
    assert_eq!(ModelConfig::Decoder(raw.config.clone()), ck.config);
    let vocab = ck.config.vocab_size();
    let loaded = ck.into_decoder()?;
    assert_eq!(loaded.model.vocab_size(), vocab);

    let err = err_text(load_encoder(&source, &Device::Cpu));
    assert!(
        err.ends_with("this checkpoint holds a decoder, and an encoder is needed here"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn an_encoder_directory_loads_as_an_encoder_with_its_labels() -> Result<()> {
    let dir = model_dir("encoder", "tiny_bert", WORDPIECE)?;
    let source = ModelSource::HfDir(dir.clone());
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    assert_eq!(ck.kind(), ModelKind::Encoder);
    assert_eq!(model_kind(&source)?, ModelKind::Encoder);
    let labels = ck.labels.clone().context("labels")?;
    assert_eq!(labels, ["LABEL_0", "LABEL_1", "LABEL_2"]);
    let sp = ck.encoder_specials.context("specials")?;
    assert_eq!((sp.cls_id, sp.sep_id), (2, 3));

    // The built encoder equals one built by hand over `load_encoder`'s tensors.
    let old = load_encoder(&source, &Device::Cpu)?;
    assert_eq!(old.labels(), Some(labels));
    assert_eq!((old.cls_id, old.sep_id), (2, 3));
    assert_eq!(ModelConfig::Encoder(old.config.clone()), ck.config);
    let vb = candle_nn::VarBuilder::from_tensors(old.tensors.clone(), DType::F32, &Device::Cpu);
    let by_hand = Bert::new(&old.config, vb.pp("bert"))?;
    let rows = vec![(vec![2, 4, 4, 3], vec![0; 4]), (vec![2, 4, 3], vec![0; 3])];
    let input = EncoderInput::right_padded(&rows, 0, &Device::Cpu)?;
    let a = ck.encoder().context("encoder")?.forward_t(&input, false)?;
    let b = by_hand.forward_t(&input, false)?;
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    assert_eq!(diff, 0.0);

    let err = err_text(load_checkpoint(&source, DType::F32, &Device::Cpu));
    assert!(
        err.ends_with("this checkpoint holds an encoder, and a decoder is needed here"),
        "{err}"
    );
    let err = err_text(ck.into_decoder());
    assert!(err.ends_with("and a decoder is needed here"), "{err}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn an_unknown_architecture_is_refused_naming_the_supported_ones() -> Result<()> {
    let dir = model_dir("unknown", "tiny_llama", WORDPIECE)?;
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg)?.replace("LlamaForCausalLM", "GPTNeoXForCausalLM");
    std::fs::write(&cfg, text)?;
    let source = ModelSource::HfDir(dir.clone());
    let want = format!(
        "{}: unknown architecture `GPTNeoXForCausalLM` (supported: LlamaForCausalLM, \
         Qwen2ForCausalLM (decoders); BertModel, BertFor* (encoders); T5ForConditionalGeneration, \
         BartForConditionalGeneration, MarianMTModel (encoder-decoders); ViTModel, \
         ViTForImageClassification, CLIPVisionModel (vision encoders))",
        cfg.display()
    );
    assert_eq!(err_text(model_kind(&source)), want);
    assert_eq!(
        err_text(load_model(&source, LoadOptions::default(), &Device::Cpu)),
        want
    );
    let quantized = LoadOptions {
        quantized: true,
        ..LoadOptions::default()
    };
    let err = err_text(load_model(&source, quantized, &Device::Cpu));
    assert!(err.ends_with("--quantized needs a GGUF model"), "{err}");
    std::fs::remove_dir_all(Path::new(&dir))?;
    Ok(())
}
