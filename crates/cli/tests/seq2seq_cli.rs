//! Training encoder-decoders from the command line: `tasklm tokenizer train`, then `tasklm
//! train --task translate --arch marian --model-config --tokenizer` from scratch, `eval`
//! (greedy and beam) and `predict` (greedy and beam) on what it wrote; fine-tuning a seq2seq checkpoint (the
//! tiny BART) without `--arch`; and the errors of a train command with neither.

mod plumbing;

use plumbing::{fixture, jsonl, path, read_json, scratch, tasklm, write};
use serde_json::{json, Value};
use std::process::Command;

const PAIRS: [(&str, &str); 4] = [
    ("A dog runs in the park.", "Ein Hund rennt im Park."),
    ("Two men are talking.", "Zwei Männer unterhalten sich."),
    ("A woman reads a book.", "Eine Frau liest ein Buch."),
    ("Children play in the snow.", "Kinder spielen im Schnee."),
];

fn pairs_jsonl() -> String {
    let rows: Vec<Value> = PAIRS
        .iter()
        .map(|(s, t)| json!({"source": s, "target": t}))
        .collect();
    jsonl(&rows)
}

#[test]
fn a_fresh_marian_trains_evaluates_and_predicts_from_the_command_line() {
    let dir = scratch("seq2seq-fresh");
    let data = write(&dir, "pairs.jsonl", &pairs_jsonl());
    let corpus: Vec<&str> = PAIRS.iter().flat_map(|(s, t)| [*s, *t]).collect();
    let corpus = write(&dir, "corpus.txt", &(corpus.join("\n") + "\n"));
    let tok = dir.join("tok");
    tasklm(&[
        "tokenizer",
        "train",
        "--data",
        &corpus,
        "--vocab-size",
        "100",
        "--out",
        path(&tok),
    ]);
    let cfg = write(
        &dir,
        "small.toml",
        "d_model = 32\nencoder_layers = 1\ndecoder_layers = 1\nencoder_attention_heads = 2\n\
         decoder_attention_heads = 2\nencoder_ffn_dim = 64\ndecoder_ffn_dim = 64\ndropout = 0.0\n\
         max_position_embeddings = 64\n",
    );
    let out = dir.join("model");
    tasklm(&[
        "train",
        "--task",
        "translate",
        "--arch",
        "marian",
        "--model-config",
        &cfg,
        "--tokenizer",
        path(&tok),
        "--data",
        &data,
        "--src-lang",
        "en",
        "--tgt-lang",
        "de",
        "--out",
        path(&out),
        "--max-steps",
        "300",
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--label-smoothing",
        "0.1",
        "--save-every",
        "0",
    ]);
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["architectures"][0], "MarianMTModel", "{config}");
    assert_eq!(read_json(&out.join("tasklm.json"))["label_smoothing"], 0.1);
    for beams in ["1", "2"] {
        let r = tasklm(&[
            "eval",
            "--task",
            "translate",
            "--model",
            path(&out),
            "--data",
            &data,
            "--src-lang",
            "en",
            "--tgt-lang",
            "de",
            "--num-beams",
            beams,
            "--json",
        ]);
        let r: Value = serde_json::from_str(r.trim()).expect("eval JSON");
        let bleu = r["bleu"].as_f64().unwrap_or(0.0);
        assert!(
            bleu > 95.0,
            "beams {beams}: BLEU {bleu} on the memorised pairs: {r}"
        );
    }
    let input = write(&dir, "in.jsonl", &jsonl(&[json!({"source": PAIRS[2].0})]));
    for beams in ["1", "3"] {
        let p = tasklm(&[
            "predict",
            "--task",
            "translate",
            "--model",
            path(&out),
            "--input",
            &input,
            "--num-beams",
            beams,
        ]);
        let p: Value = serde_json::from_str(p.trim()).expect("predict JSON");
        assert_eq!(p["prediction"], PAIRS[2].1, "beams {beams}: {p}");
    }
}

#[test]
fn a_seq2seq_checkpoint_fine_tunes_without_arch() {
    let dir = scratch("seq2seq-finetune");
    let data = write(&dir, "pairs.jsonl", &pairs_jsonl());
    let out = dir.join("model");
    tasklm(&[
        "train",
        "--task",
        "translate",
        "--model",
        &fixture("tiny_bart"),
        "--data",
        &data,
        "--src-lang",
        "en",
        "--tgt-lang",
        "de",
        "--out",
        path(&out),
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--save-every",
        "0",
    ]);
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["architectures"][0], "BartForConditionalGeneration");
    let original =
        read_json(&std::path::PathBuf::from(fixture("tiny_bart")).join("generation_config.json"));
    assert_eq!(read_json(&out.join("generation_config.json")), original);
    assert!(out.join("tokenizer.json").is_file());
    assert_eq!(
        read_json(&out.join("tasklm.json"))["base_model"],
        fixture("tiny_bart")
    );
}

#[test]
fn train_needs_a_model_or_an_arch() {
    let dir = scratch("seq2seq-errors");
    let data = write(&dir, "pairs.jsonl", &pairs_jsonl());
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_tasklm"))
            .args(args)
            .output()
            .expect("run tasklm");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, err) = run(&[
        "train",
        "--task",
        "translate",
        "--data",
        &data,
        "--out",
        "/tmp/x",
    ]);
    assert!(!ok && err.contains("--model"), "{err}");
    let (ok, err) = run(&[
        "train",
        "--task",
        "translate",
        "--data",
        &data,
        "--out",
        "/tmp/x",
        "--model",
        &fixture("tiny_bart"),
        "--tokenizer",
        "/tmp",
    ]);
    assert!(!ok && err.contains("--arch"), "{err}");
}
