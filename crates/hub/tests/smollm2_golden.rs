//! The real SmolLM2-135M-Instruct GGUF against transformers (fixtures from
//! `scripts/golden/decoder.py`): tokenizer ids on ~3,000 real lines, and logits in f32.

mod gguf_golden;

#[test]
fn gguf_tokenizer_matches_transformers_on_real_text() -> anyhow::Result<()> {
    gguf_golden::check_tokenizer("smollm2-135m-instruct", "smollm2")
}

#[test]
fn smollm2_logits_match_transformers_within_1e3() -> anyhow::Result<()> {
    gguf_golden::check_logits("smollm2-135m-instruct", "smollm2", 1e-3).map(|_| ())
}
