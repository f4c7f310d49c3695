//! Visual question answering (family 12): its records and question types ([`data`]), and a
//! LLaVA model made from a vision encoder and a decoder ([`assemble`]), its training objective
//! and greedy answers ([`objective`]); the model itself is
//! `tasklm_models::vision::llava`.

pub mod assemble;
pub mod data;
pub mod objective;

pub use assemble::{VlmParts, IMAGE_TOKEN};
pub use data::{read_vqa, QuestionType, VqaExample};
