//! Seq2seq and beam search from the command line: `tasklm generate` on the tiny T5s, BART and
//! Marian feeds the prompt to the encoder as given and its beam search prints transformers'
//! `generate(num_beams=4)` tokens and text (`text_case` in each fixture's beam.json, from
//! scripts/golden/seq2seq_t5.py and seq2seq_bart.py: BART's forced EOS comes from its
//! generation_config.json, Marian never generates pad); `tasklm tokenizer train` writes its directory and names bad
//! files; `tasklm eval` runs beam search; clear errors for what an encoder-decoder cannot do.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn tasklm(args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

#[test]
fn beam_search_from_the_command_line_matches_transformers() -> Result<()> {
    for name in ["tiny_t5", "tiny_t5_gated", "tiny_bart", "tiny_marian"] {
        let dir = fixture(name);
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("beam.json"))?)?;
        let case = &golden["text_case"];
        let (ok, out, err) = tasklm(&[
            "generate",
            "--model",
            dir.to_str().context("path")?,
            "--prompt",
            case["prompt"].as_str().context("prompt")?,
            "--num-beams",
            "4",
            "--max-new-tokens",
            "8",
            "--json",
        ])?;
        assert!(ok, "{err}");
        let got: Value = serde_json::from_str(out.trim())?;
        assert_eq!(got["tokens"], case["ids"], "{name}");
        assert_eq!(got["text"], case["text"], "{name}");
        let source_len = case["source"].as_array().map_or(0, Vec::len);
        assert_eq!(
            got["usage"]["prompt_tokens"].as_u64(),
            Some(source_len as u64)
        );
    }
    Ok(())
}

#[test]
fn greedy_sampling_streams_and_chat_is_refused() -> Result<()> {
    let dir = fixture("tiny_t5");
    let model = dir.to_str().context("path")?;
    let (ok, out, err) = tasklm(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "two dogs",
        "--temperature",
        "0",
        "--max-new-tokens",
        "5",
        "--json",
    ])?;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim())?;
    assert_eq!(v["tokens"].as_array().map(Vec::len), Some(5));
    let (ok, _, err) = tasklm(&["generate", "--model", model, "--prompt", "hi", "--chat"])?;
    assert!(!ok && err.contains("encoder-decoder"), "{err}");
    Ok(())
}

/// Greedy generation on Marian never prints its pad token; a prompt longer than BART's 32
/// positions is an error that says so.
#[test]
fn marian_greedy_skips_pad_and_long_prompts_are_refused() -> Result<()> {
    let dir = fixture("tiny_marian");
    let (ok, out, err) = tasklm(&[
        "generate",
        "--model",
        dir.to_str().context("path")?,
        "--prompt",
        "zwei hunde spielen",
        "--temperature",
        "0",
        "--max-new-tokens",
        "6",
        "--json",
    ])?;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim())?;
    let tokens = v["tokens"].as_array().context("tokens")?;
    assert!(!tokens.is_empty() && tokens.iter().all(|t| t != 42), "{v}");
    let dir = fixture("tiny_bart");
    let long = "a man is riding a bike in the park ".repeat(4);
    let (ok, _, err) = tasklm(&[
        "generate",
        "--model",
        dir.to_str().context("path")?,
        "--prompt",
        &long,
        "--num-beams",
        "2",
    ])?;
    assert!(!ok && err.contains("32"), "{err}");
    Ok(())
}

#[test]
fn tokenizer_train_writes_a_directory_and_names_bad_files() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("tok");
    let corpus = fixture("tokenizer_trainer").join("corpus.txt");
    let (ok, _, err) = tasklm(&[
        "tokenizer",
        "train",
        "--data",
        corpus.to_str().context("path")?,
        "--vocab-size",
        "200",
        "--kind",
        "bpe",
        "--out",
        out.to_str().context("path")?,
    ])?;
    assert!(ok, "{err}");
    assert!(err.contains("600 lines"), "{err}");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let (ok, _, err) = tasklm(&[
        "tokenizer",
        "train",
        "--data",
        "/nonexistent/corpus.txt",
        "--out",
        out.to_str().context("path")?,
    ])?;
    assert!(!ok && err.contains("/nonexistent/corpus.txt"), "{err}");
    Ok(())
}

/// Runs genqa `eval` (predictions to `preds`) and `predict` on `data` with the same `flags`,
/// checks that both give each record the same prediction, and returns predict's output.
fn predict_answers_as_eval(
    model: &str,
    data: &str,
    preds: &Path,
    flags: &[&str],
) -> Result<String> {
    let common = ["--task", "genqa", "--model", model];
    let preds_s = preds.to_str().context("path")?;
    let eval = [
        &["eval"][..],
        &common,
        &["--data", data, "--predictions", preds_s],
        flags,
    ]
    .concat();
    let (ok, _, err) = tasklm(&eval)?;
    assert!(ok, "{err}");
    let (ok, out, err) = tasklm(&[&["predict"][..], &common, &["--input", data], flags].concat())?;
    assert!(ok, "{err}");
    let evaluated = std::fs::read_to_string(preds)?;
    for (e, p) in evaluated.lines().zip(out.lines()) {
        let (e, p): (Value, Value) = (serde_json::from_str(e)?, serde_json::from_str(p)?);
        assert_eq!(
            e["prediction"], p["prediction"],
            "{flags:?}: eval {e} vs predict {p}"
        );
    }
    assert_eq!(out.lines().count(), 2, "{flags:?}: {out}");
    Ok(out)
}

/// `tasklm eval` of a generative task with beam search on the tiny decoder: the run scores
/// every record and writes a prediction for each, `predict` with the same beams (or the same
/// `--max-new-tokens`) gives the same answers; beam search with several samples is refused.
#[test]
fn generative_eval_runs_beam_search() -> Result<()> {
    let model = fixture("tiny_decoder");
    let model = model.to_str().context("path")?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("qa.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"what is two plus two?\", \"answer\": \"four\"}\n{\"question\": \"capital of france?\", \"answer\": \"paris\"}\n",
    )?;
    let preds = tmp.path().join("preds.jsonl");
    let data_s = data.to_str().context("path")?;
    let (ok, out, err) = tasklm(&[
        "eval",
        "--task",
        "genqa",
        "--model",
        model,
        "--data",
        data_s,
        "--num-beams",
        "3",
        "--max-new-tokens",
        "6",
        "--predictions",
        preds.to_str().context("path")?,
        "--json",
    ])?;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(out.trim())?;
    assert_eq!(report["n"], 2, "{report}");
    assert!(report["f1"].is_number(), "{report}");
    let lines = std::fs::read_to_string(&preds)?;
    assert_eq!(lines.lines().count(), 2);
    // `predict` with the same beams (and the same default length) answers each record as the
    // batched eval did; so does `predict --max-new-tokens` (greedy).
    let out = predict_answers_as_eval(model, data_s, &preds, &["--num-beams", "3"])?;
    let short = predict_answers_as_eval(model, data_s, &preds, &["--max-new-tokens", "3"])?;
    assert_ne!(short, out, "3 new tokens answer as the default length did");
    let (ok, _, err) = tasklm(&[
        "eval",
        "--task",
        "genqa",
        "--model",
        model,
        "--data",
        data_s,
        "--num-beams",
        "3",
        "--samples",
        "2",
        "--temperature",
        "0.7",
    ])?;
    assert!(
        !ok && err.contains("beam search gives one sequence"),
        "{err}"
    );
    Ok(())
}
