//! Summarisation from long sources: dialogues of a few hundred tokens that share everything but
//! one line near their end, each summarised by that line. A model that ignores its source (the
//! failure of the first DialogSum run) cannot tell them apart; a fresh Marian and T5 trained by
//! `--task summarize` must give every dialogue its own summary through `eval`, which proves the
//! long-source path (positions past 200, padded batches of different lengths, the source's mask
//! in cross-attention) carries the source to the decoder.

use anyhow::Result;
use std::path::{Path, PathBuf};
use tasklm_tasks::seq2seq::Seq2SeqOptions;
use tasklm_tasks::{EvalJob, TaskKind, TaskOptions, TrainJob};
use tasklm_text::trainer::{save_trained, train_tokenizer, SubwordKind, TrainerOptions};
use tasklm_train::TrainArgs;

#[path = "common/tiny_seq2seq.rs"]
mod tiny_seq2seq;
use tiny_seq2seq::tiny_config;

const FILLER: &str = "#Person1#: How was the weather on your trip this week?\n\
#Person2#: It rained every day, but the hotel was nice.\n";

const ENDINGS: [(&str, &str); 6] = [
    (
        "I will buy a red car tomorrow.",
        "#Person1# will buy a red car.",
    ),
    (
        "We should visit the old museum.",
        "They plan to visit the museum.",
    ),
    (
        "My sister starts school in May.",
        "#Person1#'s sister starts school.",
    ),
    (
        "The doctor said to rest at home.",
        "#Person1# must rest at home.",
    ),
    (
        "Let us cook fish for dinner.",
        "They will cook fish for dinner.",
    ),
    ("I lost my keys at the station.", "#Person1# lost the keys."),
];

/// Dialogues of 3 to 8 filler exchanges (a different length each, so batches pad), then the
/// line that decides the summary and one more exchange: 320 to 670 tokens of the test's
/// tokenizer, the deciding line between positions 200 and 540.
fn write_data(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let mut rows = Vec::new();
    let mut corpus = String::new();
    for (i, (line, summary)) in ENDINGS.iter().enumerate() {
        let dialogue = format!(
            "{}#Person1#: {line}\n#Person2#: I see.\n{}",
            FILLER.repeat(3 + i),
            FILLER
        );
        corpus.push_str(&format!("{dialogue}\n{summary}\n"));
        rows.push(serde_json::json!({"dialogue": dialogue, "summary": summary}).to_string());
    }
    let data = dir.join("dialogues.jsonl");
    std::fs::write(&data, rows.join("\n") + "\n")?;
    let corpus_path = dir.join("corpus.txt");
    std::fs::write(&corpus_path, corpus)?;
    let opts = TrainerOptions {
        kind: SubwordKind::Unigram,
        vocab_size: 150,
        min_frequency: 1,
        ..TrainerOptions::default()
    };
    let (tok, _) = train_tokenizer(&[corpus_path], &opts)?;
    let tok_dir = dir.join("tok");
    save_trained(&tok, SubwordKind::Unigram, &tok_dir)?;
    Ok((data, tok_dir))
}

#[test]
fn fresh_marian_and_t5_summarise_each_long_dialogue_by_its_own_line() -> Result<()> {
    for arch in ["marian", "t5"] {
        let tmp = tempfile::tempdir()?;
        let (data, tok) = write_data(tmp.path())?;
        let cfg = tiny_config(tmp.path(), arch, 1024)?;
        let out = tmp.path().join("out");
        let job = TrainJob {
            args: TrainArgs {
                max_steps: Some(300),
                batch_size: 3,
                lr: 3e-3,
                max_grad_norm: 1.0,
                ..TrainArgs::default()
            },
            options: TaskOptions {
                seq2seq: Seq2SeqOptions {
                    arch: Some(arch.into()),
                    model_config: Some(cfg),
                    tokenizer: Some(tok),
                    label_smoothing: 0.0,
                    predict_with_generate: false,
                },
                ..TaskOptions::default()
            },
            max_seq_len: Some(1024),
            ..TrainJob::new(TaskKind::Summarize, "", data.clone(), out.clone())
        };
        tasklm_tasks::train(&job, &|_: &str| {})?;
        let predictions = tmp.path().join("predictions.jsonl");
        let mut ej = EvalJob {
            max_seq_len: Some(1024),
            ..EvalJob::new(
                TaskKind::Summarize,
                out.to_str().unwrap_or_default(),
                data.clone(),
            )
        };
        ej.generation.predictions = Some(predictions.clone());
        let report = tasklm_tasks::evaluate(&ej, &|_: &str| {})?;
        let rouge_l = report.metric_f64("rougeL").unwrap_or(0.0);
        let said: Vec<String> = std::fs::read_to_string(&predictions)?
            .lines()
            .map(|l| -> Result<String> {
                let v: serde_json::Value = serde_json::from_str(l)?;
                Ok(v["prediction"].as_str().unwrap_or_default().to_string())
            })
            .collect::<Result<_>>()?;
        let distinct: std::collections::BTreeSet<&String> = said.iter().collect();
        assert_eq!(
            distinct.len(),
            ENDINGS.len(),
            "{arch}: one summary per dialogue expected, got {said:?}"
        );
        assert!(rouge_l > 90.0, "{arch}: ROUGE-L {rouge_l}: {said:?}");
    }
    Ok(())
}
