//! JSON Lines as every tasklm task reads them: the generic reader, then the records of each
//! task (classification, NLI, NER, QA, SFT, chat and the generative tasks) over the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tasklm_data as data;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new("fuzz.jsonl");
    if data::jsonl::parse_jsonl(path, text).is_err() {
        return;
    }
    let _ = data::parse_classify(path, text);
    let _ = data::parse_nli(path, text);
    let _ = data::parse_ner(path, text);
    let _ = data::parse_squad(path, text);
    let _ = data::parse_sft_jsonl(path, text);
    let _ = data::parse_chat_jsonl(path, text);
    for task in ["genqa", "summarize", "code", "reasoning"] {
        let _ = data::parse_generative(task, path, text);
    }
});
