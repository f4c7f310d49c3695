use super::*;
use crate::weights::load_safetensors_dir;
use candle_core::{DType, Device};
use serde_json::json;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn read_config(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn arch(config: Value) -> Result<ModelArchitecture> {
    ModelArchitecture::from_config(&config, Path::new("m/config.json"))
}

#[test]
fn architectures_dispatch_to_their_kind() -> Result<()> {
    use ModelArchitecture::{Decoder, Encoder};
    let cases = [
        ("LlamaForCausalLM", Decoder(DecoderArchitecture::Llama)),
        ("MistralForCausalLM", Decoder(DecoderArchitecture::Llama)),
        ("Qwen2ForCausalLM", Decoder(DecoderArchitecture::Qwen2)),
        ("BertModel", Encoder(EncoderArchitecture::Bert)),
        (
            "BertForSequenceClassification",
            Encoder(EncoderArchitecture::Bert),
        ),
        (
            "BertForQuestionAnswering",
            Encoder(EncoderArchitecture::Bert),
        ),
    ];
    for (name, want) in cases {
        // `architectures` wins over a `model_type` that disagrees with it.
        let got = arch(json!({"architectures": [name], "model_type": "other"}))?;
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(
        arch(json!({"architectures": ["BertModel"]}))?.kind(),
        ModelKind::Encoder
    );
    assert_eq!(
        arch(json!({"architectures": ["Qwen2ForCausalLM"]}))?.kind(),
        ModelKind::Decoder
    );
    Ok(())
}

#[test]
fn model_type_is_read_when_there_is_no_architectures_list() -> Result<()> {
    let bert = arch(json!({"model_type": "bert"}))?;
    assert_eq!(bert, ModelArchitecture::Encoder(EncoderArchitecture::Bert));
    let qwen = arch(json!({"architectures": [], "model_type": "qwen2"}))?;
    assert_eq!(qwen, ModelArchitecture::Decoder(DecoderArchitecture::Qwen2));
    Ok(())
}

#[test]
fn an_unknown_architecture_names_every_supported_one() {
    let err = arch(json!({"architectures": ["PegasusForConditionalGeneration"]}));
    assert_eq!(
        err.err().map(|e| e.to_string()).as_deref(),
        Some(
            "m/config.json: unknown architecture `PegasusForConditionalGeneration` (supported: \
             LlamaForCausalLM, Qwen2ForCausalLM (decoders); BertModel, BertFor* (encoders); \
             T5ForConditionalGeneration, BartForConditionalGeneration, MarianMTModel \
             (encoder-decoders); ViTModel, ViTForImageClassification, CLIPVisionModel (vision \
             encoders))"
        )
    );
    // A known model_type does not rescue an unknown `architectures` entry: no guessing.
    let err =
        arch(json!({"architectures": ["LlamaForSequenceClassification"], "model_type": "llama"}));
    assert!(err
        .err()
        .is_some_and(|e| e.to_string().contains("`LlamaForSequenceClassification`")));
    let err = arch(json!({"hidden_size": 8}));
    assert_eq!(
        err.err().map(|e| e.to_string()).as_deref(),
        Some(
            "m/config.json: no `architectures` or `model_type`: cannot tell which model this is \
             (supported: LlamaForCausalLM, Qwen2ForCausalLM (decoders); BertModel, BertFor* \
             (encoders); T5ForConditionalGeneration, BartForConditionalGeneration, \
             MarianMTModel (encoder-decoders); ViTModel, ViTForImageClassification, \
             CLIPVisionModel (vision encoders))"
        )
    );
}

#[test]
fn gguf_names_dispatch_to_decoders_and_unknown_ones_are_listed() -> Result<()> {
    let p = Path::new("m.gguf");
    assert_eq!(
        ModelArchitecture::from_gguf("qwen2", p)?,
        ModelArchitecture::Decoder(DecoderArchitecture::Qwen2)
    );
    let err = ModelArchitecture::from_gguf("mamba", p).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("m.gguf: unknown architecture `mamba` (supported: llama, qwen2)")
    );
    Ok(())
}

#[test]
fn configs_parse_for_their_kind_and_refuse_the_other() -> Result<()> {
    for (name, kind) in [
        ("tiny_llama", ModelKind::Decoder),
        ("tiny_qwen2", ModelKind::Decoder),
        ("tiny_bert", ModelKind::Encoder),
        ("tiny_t5", ModelKind::Seq2Seq),
        ("tiny_bart", ModelKind::Seq2Seq),
        ("tiny_marian", ModelKind::Seq2Seq),
    ] {
        let dir = fixture(name);
        let json = read_config(&dir);
        let a = ModelArchitecture::from_config(&json, &dir)?;
        assert_eq!(a.kind(), kind, "{name}");
        let cfg = a.parse_config(&json, &dir)?;
        assert_eq!(cfg.kind(), kind, "{name}");
        assert!(cfg.vocab_size() > 0 && cfg.max_positions() > 0);
    }
    // A Llama config has every key BERT requires, but its activation is not BERT's.
    let llama = read_config(&fixture("tiny_llama"));
    let bert = ModelArchitecture::Encoder(EncoderArchitecture::Bert);
    let err = bert.parse_config(&llama, Path::new("x/config.json")).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("x/config.json: hidden_act `silu` is not supported (gelu, gelu_new, relu)")
    );
    let err = bert
        .parse_config(&json!({"model_type": "bert"}), Path::new("x/config.json"))
        .err();
    assert!(err
        .map(|e| e.to_string())
        .is_some_and(|e| e.starts_with("x/config.json: not a BERT config: missing field")));
    Ok(())
}

#[test]
fn build_makes_the_model_of_each_kind() -> Result<()> {
    for (name, kind) in [
        ("tiny_llama", ModelKind::Decoder),
        ("tiny_bert", ModelKind::Encoder),
        ("tiny_t5", ModelKind::Seq2Seq),
        ("tiny_bart", ModelKind::Seq2Seq),
        ("tiny_marian", ModelKind::Seq2Seq),
        ("tiny_vit", ModelKind::Vision),
        ("tiny_vit_model", ModelKind::Vision),
        ("tiny_clip_vision", ModelKind::Vision),
    ] {
        let dir = fixture(name);
        let json = read_config(&dir);
        let a = ModelArchitecture::from_config(&json, &dir)?;
        let cfg = a.parse_config(&json, &dir)?;
        let tensors = load_safetensors_dir(&dir, DType::F32, &Device::Cpu)?;
        let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
        let model = a.build(&cfg, vb, None)?;
        assert_eq!(model.kind(), kind, "{name}");
        match (&model, &cfg) {
            (Model::Decoder(m), ModelConfig::Decoder(c)) => {
                assert_eq!(m.vocab_size(), c.vocab_size)
            }
            (Model::Encoder(m), ModelConfig::Encoder(c)) => assert_eq!(m.config(), c),
            (Model::Seq2Seq(m), ModelConfig::Seq2Seq(c)) => assert_eq!(&m.config(), c),
            (Model::Vision(m), ModelConfig::Vision(c)) => assert_eq!(&m.config(), c),
            _ => panic!(
                "{name}: built a {} from a {} config",
                model.kind(),
                cfg.kind()
            ),
        }
        // The other kind's config is refused, naming both kinds.
        let other = match a.kind() {
            ModelKind::Decoder => ModelArchitecture::Encoder(EncoderArchitecture::Bert),
            ModelKind::Encoder | ModelKind::Seq2Seq | ModelKind::Vision => {
                ModelArchitecture::Decoder(DecoderArchitecture::Llama)
            }
        };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let err = other.build(&cfg, vb, None).err().map(|e| e.to_string());
        let want = format!("cannot be built from {} config", cfg.kind().with_article());
        assert!(err.as_deref().is_some_and(|e| e.contains(&want)), "{err:?}");
    }
    Ok(())
}

#[test]
fn vision_configs_parse_and_a_bad_grid_is_refused() -> Result<()> {
    use ModelArchitecture::Vision;
    for (name, want, positions) in [
        ("tiny_vit", Vision(VisionArchitecture::Vit), 17),
        ("tiny_vit_model", Vision(VisionArchitecture::Vit), 17),
        (
            "tiny_clip_vision",
            Vision(VisionArchitecture::ClipVision),
            17,
        ),
    ] {
        let dir = fixture(name);
        let json = read_config(&dir);
        let a = ModelArchitecture::from_config(&json, &dir)?;
        assert_eq!(a, want, "{name}");
        let cfg = a.parse_config(&json, &dir)?;
        assert_eq!(cfg.kind(), ModelKind::Vision);
        // 32 x 32 images in 8 x 8 patches: 16 patches and [CLS].
        assert_eq!(
            (cfg.max_positions(), cfg.vocab_size()),
            (positions, 0),
            "{name}"
        );
    }
    let mut json = read_config(&fixture("tiny_vit"));
    json["patch_size"] = json!(7);
    let err = arch(json.clone())?
        .parse_config(&json, Path::new("v/config.json"))
        .err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("v/config.json: image_size (32) must be a positive multiple of patch_size (7)")
    );
    let err = arch(json!({"architectures": ["SiglipVisionModel"]})).err();
    assert!(err
        .map(|e| e.to_string())
        .is_some_and(|e| e
            .contains("ViTModel, ViTForImageClassification, CLIPVisionModel (vision encoders)")));
    Ok(())
}
