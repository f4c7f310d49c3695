//! A GGUF file as tasklm reads it: the validating header pass, candle's reader, the config
//! from `{arch}.*` metadata, every tensor dequantized (and, for odd-length inputs, kept
//! quantized), and the tokenizer fields of `tokenizer.ggml.*`. Building the tokenizer costs
//! about 100 ms under ASan (the tokenizers crate compiles its regexes), so only inputs whose
//! length is a multiple of 16 build and run it; the rest stay fast.
#![no_main]

use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;
use tasklm_models::gguf;
use tasklm_text::TextTokenizer;

/// Panics inside the tokenizers crate (building the GGUF tokenizer) are caught by tasklm's own entry points and returned as errors;
/// only those are let through here: any other panic still reaches libFuzzer's hook and aborts.
fn let_caught_dependency_panics_through() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let caught = info
                .location()
                .is_some_and(|l| ["/tokenizers-"].iter().any(|c| l.file().contains(c)));
            if !caught {
                abort(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_caught_dependency_panics_through();
    let path = Path::new("fuzz.gguf");
    let Ok(content) = gguf::read_header_from(&mut Cursor::new(data), path) else {
        return;
    };
    let Ok(vocab) = tasklm_hub::load::vocab_from_gguf(&content.metadata) else {
        return;
    };
    if data.len() % 16 == 0 {
        if let Ok(tok) = TextTokenizer::from_gguf(&vocab) {
            if let Ok(ids) = tok.encode("Hello, world! <|im_end|> ünï", true) {
                let _ = tok.decode(&ids, false);
                for &id in &ids {
                    let _ = tok.token_bytes(id);
                }
            }
        }
    }
    let keep_quantized = data.len() % 2 == 1;
    let _ = gguf::load_from(
        &mut Cursor::new(data),
        path,
        DType::F32,
        &Device::Cpu,
        keep_quantized,
    );
});
