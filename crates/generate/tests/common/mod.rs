//! Shared by the beam search golden tests: the fixture directory and the beam options a
//! golden case's `settings` (transformers' `generate` keyword arguments) stand for.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use tasklm_generate::{BeamParams, EarlyStopping};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// `BeamParams` from `generate(num_beams=..., length_penalty=..., ...)`'s keyword arguments.
pub fn beam_params(s: &Value) -> Result<BeamParams> {
    let num = |k: &str| s.get(k).and_then(Value::as_u64).map(|x| x as usize);
    let mut p = BeamParams::new(
        num("num_beams").context("num_beams")?,
        num("max_new_tokens").context("max_new_tokens")?,
    );
    if let Some(lp) = s.get("length_penalty").and_then(Value::as_f64) {
        p.length_penalty = lp as f32;
    }
    p.early_stopping = match s.get("early_stopping") {
        Some(Value::Bool(true)) => EarlyStopping::Done,
        Some(Value::String(n)) if n == "never" => EarlyStopping::Never,
        _ => EarlyStopping::Heuristic,
    };
    p.no_repeat_ngram_size = num("no_repeat_ngram_size").unwrap_or(0);
    p.min_new_tokens = num("min_new_tokens").unwrap_or(0);
    p.num_return_sequences = num("num_return_sequences").unwrap_or(1);
    p.forced_bos_token_id = num("forced_bos_token_id").map(|t| t as u32);
    p.forced_eos_token_id = num("forced_eos_token_id").map(|t| t as u32);
    Ok(p)
}

pub fn ids(v: &Value) -> Result<Vec<u32>> {
    Ok(serde_json::from_value(v.clone())?)
}
