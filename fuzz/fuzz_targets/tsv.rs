//! A classification TSV (a header naming `sentence`/`text` and `label`, then rows).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = tasklm_data::parse_classify(Path::new("fuzz.tsv"), text);
    }
});
