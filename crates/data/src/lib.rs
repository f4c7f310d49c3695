//! tasklm-data: one typed record per task, read from the formats users have (JSONL with the
//! field names Hugging Face datasets use), encoded to features with a loss mask, and collated
//! into padded batches (labels padded with -100).

// Library code returns errors: no unwrap/expect outside tests (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chat;
pub mod classify;
mod collate;
mod error;
pub mod generative;
pub mod image;
pub mod jsonl;
pub mod ner;
pub mod sft;
pub mod squad;

pub use chat::{encode_chat, parse_chat_jsonl, read_chat_jsonl, ChatRecord};
pub use classify::{
    parse_classify, parse_nli, read_classify, read_nli, ClassifyRecord, NliRecord, NLI_LABELS,
};
pub use collate::{
    collate, pack, scored_positions, Batch, Features, IGNORE_INDEX, MAX_PACKED_SAMPLES,
};
pub use error::{DataError, Result};
pub use generative::{
    parse_generative, read_generative, read_translation, translation_files, GenRecord,
};
pub use image::{ImageLimits, ImageProcessor, Resample, Resize, Rgb8, PREPROCESSOR_CONFIG};
pub use ner::{parse_ner, read_ner, NerRecord, CONLL2003_TAGS};
pub use sft::{encode_sft, parse_sft_jsonl, read_sft_jsonl, EncodeStats, SftRecord, Truncation};
pub use squad::{parse_squad, read_squad, QaRecord};
