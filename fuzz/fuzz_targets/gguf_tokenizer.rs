//! The tokenizer tasklm builds from a GGUF file's `tokenizer.ggml.*` fields (the header and
//! metadata themselves are the `gguf` target): built, then run on a text with specials and
//! non-ASCII characters, decoded, and every id's bytes read.
#![no_main]

#[path = "common/caught_panics.rs"]
mod caught_panics;

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;
use tasklm_models::gguf;
use tasklm_text::TextTokenizer;

fuzz_target!(|data: &[u8]| {
    caught_panics::let_through_panics_in(&["/tokenizers-"]);
    let path = Path::new("fuzz.gguf");
    let Ok(content) = gguf::read_header_from(&mut Cursor::new(data), path) else {
        return;
    };
    let Ok(vocab) = tasklm_hub::load::vocab_from_gguf(&content.metadata) else {
        return;
    };
    if let Ok(tok) = TextTokenizer::from_gguf(&vocab) {
        if let Ok(ids) = tok.encode("Hello, world! <|im_end|> ünï", true) {
            let _ = tok.decode(&ids, false);
            for &id in &ids {
                let _ = tok.token_bytes(id);
            }
        }
    }
});
