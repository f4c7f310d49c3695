//! What the task families share: progress bars, `tasklm.json` and the provenance it records,
//! the decoder training runner (SFT, chat, decoder label tasks, generative tasks) and the
//! encoder training runner (classify, NLI, NER, QA), each written once.

pub mod best_beam;
pub mod encoder_input;
pub mod encoder_runner;
pub mod fresh_init;
pub mod lm_runner;
pub mod lora_out;
pub mod predictions;
pub mod progress;
pub mod provenance;
pub mod tasklm_json;
