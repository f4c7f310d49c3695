//! A model directory's tokenizer files as tasklm loads them: `tokenizer.json`, then (after a
//! NUL byte) `tokenizer_config.json`, then (after another) `generation_config.json`; the
//! tokenizer then encodes, decodes and spells a few texts.
#![no_main]

#[path = "common/caught_panics.rs"]
mod caught_panics;

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tasklm_text::{TextTokenizer, TokenizerFiles};

const TEXTS: [&str; 4] = [
    "Hello, world!",
    "  naïve café — 東京 🙂\n\tend",
    "<|im_start|>user\nHi<|im_end|>\n[CLS] x [SEP] </s>",
    "",
];

fuzz_target!(|data: &[u8]| {
    caught_panics::let_through_panics_in(&["/tokenizers-"]);
    let mut parts = data.splitn(3, |&b| b == 0);
    let json = parts.next().unwrap_or_default();
    let config = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let generation = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let files = TokenizerFiles {
        tokenizer_json: json,
        tokenizer_config: config,
        chat_template_jinja: None,
        generation_config: generation,
    };
    let Ok(tok) = TextTokenizer::from_files(Path::new("fuzz"), &files) else {
        return;
    };
    for text in TEXTS {
        for special in [false, true] {
            if let Ok((ids, offsets)) = tok.encode_with_offsets(text, special) {
                assert_eq!(ids.len(), offsets.len());
                let _ = tok.decode(&ids, true);
                for &id in ids.iter().take(64) {
                    let _ = tok.token_bytes(id);
                }
            }
        }
    }
    let _ = (tok.vocab_size(), tok.pad_id());
});
