//! tasklm-eval: the standard metrics of each task, in plain Rust (no tensors), each checked
//! against the reference implementation's output on fixed inputs.

pub mod classification;

pub use classification::{accuracy, macro_f1};
