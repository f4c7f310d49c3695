//! A GGUF file's header and metadata as tasklm reads them: the validating header pass,
//! candle's reader, the config from `{arch}.*` metadata, every tensor dequantized (and, for
//! odd-length inputs, kept quantized), and the tokenizer fields of `tokenizer.ggml.*`. Building
//! the tokenizer from those fields (about 100 ms under ASan: the tokenizers crate compiles its
//! regexes) is the `gguf_tokenizer` target, so this one stays fast.
#![no_main]

use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;
use tasklm_models::gguf;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    let Ok(content) = gguf::read_header_from(&mut Cursor::new(data), path) else {
        return;
    };
    let _ = tasklm_hub::load::vocab_from_gguf(&content.metadata);
    let keep_quantized = data.len() % 2 == 1;
    let _ = gguf::load_from(
        &mut Cursor::new(data),
        path,
        DType::F32,
        &Device::Cpu,
        keep_quantized,
    );
});
