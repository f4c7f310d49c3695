//! Chat-template rendering with a hostile template and hostile messages: the input is the
//! template source, then (after a NUL byte) the messages as `{"messages": [...]}` JSON, or
//! as lines `role: content` when that is not JSON. Renders with and without the generation
//! prompt, and derives the training loss mask with a small byte-level tokenizer.
#![no_main]

#[path = "common/caught_panics.rs"]
mod caught_panics;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tasklm_text::{render_for_training, ChatMessage, ChatTemplate, GgufVocab, TextTokenizer};

fn tokenizer() -> &'static TextTokenizer {
    static TOK: OnceLock<TextTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        // The 256 byte tokens of GPT-2's byte alphabet and ChatML's markers.
        let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
        let mut extra = 0;
        let mut tokens: Vec<String> = (0u32..256)
            .map(|b| {
                let c = if printable(b) {
                    b
                } else {
                    extra += 1;
                    255 + extra
                };
                char::from_u32(c).map(String::from).unwrap_or_default()
            })
            .collect();
        let mut types = vec![1; tokens.len()];
        for special in ["<|im_start|>", "<|im_end|>", "</s>", "<s>"] {
            tokens.push(special.into());
            types.push(3);
        }
        let vocab = GgufVocab {
            model: "gpt2".into(),
            tokens,
            token_types: types,
            eos_id: Some(257),
            ..GgufVocab::default()
        };
        TextTokenizer::from_gguf(&vocab).expect("the fixed fuzz tokenizer builds")
    })
}

fn messages(text: &str) -> Vec<ChatMessage> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(m) = tasklm_data::chat::parse_messages(&v) {
            return m;
        }
    }
    text.lines()
        .take(64)
        .map(|l| {
            let (role, content) = l.split_once(':').unwrap_or(("user", l));
            ChatMessage::new(role.trim(), content)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    caught_panics::let_through_panics_in(&["/minijinja-"]);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, rest) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(mut tpl) = ChatTemplate::with_end_of_turn(source, "<s>", "</s>", "<|im_end|>") else {
        return;
    };
    // Small budgets keep each run fast; the defaults bound the same things at larger sizes.
    tpl.set_limits(20_000, 1 << 20);
    let msgs = messages(rest);
    let _ = tpl.render(&msgs, true);
    let _ = tpl.render(&msgs, false);
    let _ = render_for_training(&tpl, tokenizer(), &msgs);
});
