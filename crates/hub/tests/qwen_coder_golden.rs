//! Qwen2.5-Coder-0.5B-Instruct (the catalog's six-part GGUF: Q5_0, Q4_K, Q6_K and Q8_0
//! matrices) against transformers on the same file, dequantized (fixtures from
//! `scripts/golden/decoder.py --qwen-gguf`): the tokenizer rebuilt from the GGUF gives
//! transformers' ids on ~3,000 real lines, and the logits agree in f32. The file stores its own
//! `output.weight`, so the head is loaded untied, as the file has it (the upstream config ties
//! it to the embeddings).

mod gguf_golden;

const NAME: &str = "qwen2.5-coder-0.5b-instruct";

#[test]
fn qwen_coder_tokenizer_matches_transformers_on_real_text() -> anyhow::Result<()> {
    gguf_golden::check_tokenizer(NAME, "qwen_coder")
}

#[test]
fn qwen_coder_logits_match_transformers_and_its_head_is_its_own() -> anyhow::Result<()> {
    // Measured: at most 2.8e-5 over the four prompts (2026-12-02).
    if let Some(cfg) = gguf_golden::check_logits(NAME, "qwen_coder", 1e-3)? {
        assert!(
            !cfg.tie_word_embeddings,
            "the GGUF has output.weight: an untied head"
        );
        assert_eq!((cfg.num_hidden_layers, cfg.hidden_size), (24, 896));
    }
    Ok(())
}
