//! Visual question answering (family 12): its records and question types ([`data`]); the
//! vision-language model it trains is `tasklm_models::vision::llava`.

pub mod data;

pub use data::{read_vqa, QuestionType, VqaExample};
