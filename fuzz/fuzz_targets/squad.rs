//! A SQuAD file: SQuAD v1.1 JSON (or JSONL) for extractive QA, and the same as `genqa` data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let path = Path::new("fuzz.json");
        let _ = tasklm_data::parse_squad(path, text);
        let _ = tasklm_data::parse_generative("genqa", path, text);
    }
});
