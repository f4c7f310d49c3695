//! SFT encoding: loss on completion + EOS only, truncation, collation, and errors that name
//! the file and line.

use anyhow::Result;
use candle_core::Device;
use std::path::PathBuf;
use tasklm_data::{
    collate, encode_sft, read_sft_jsonl, EncodeStats, SftRecord, Truncation, IGNORE_INDEX,
};
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_checkpoint, ModelSource};
use tasklm_text::TextTokenizer;

fn tokenizer() -> Result<Option<TextTokenizer>> {
    let Some(p) = catalog_model("smollm2-135m-instruct")? else {
        return Ok(None);
    };
    Ok(Some(
        load_checkpoint(&ModelSource::Gguf(p), candle_core::DType::F32, &Device::Cpu)?.tokenizer,
    ))
}

fn tmp_file(name: &str, body: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("tasklm-data-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    let p = d.join(name);
    std::fs::write(&p, body)?;
    Ok(p)
}

#[test]
fn reads_both_layouts_and_names_bad_lines() -> Result<()> {
    let p = tmp_file(
        "ok.jsonl",
        "{\"prompt\": \"Q: 2+2?\\nA:\", \"completion\": \" 4\"}\n\n{\"instruction\": \"Add\", \"input\": \"2 and 2\", \"output\": \"4\"}\n",
    )?;
    let recs = read_sft_jsonl(&p)?;
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[1].prompt,
        "### Instruction:\nAdd\n\n### Input:\n2 and 2\n\n### Response:\n"
    );
    assert_eq!(recs[1].line, 3);

    let bad = tmp_file(
        "bad.jsonl",
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"text\": \"x\"}\n",
    )?;
    let err = read_sft_jsonl(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.jsonl:2: expected string fields `prompt` and `completion`"),
        "{err}"
    );
    let bad = tmp_file("bad2.jsonl", "{not json\n")?;
    let err = read_sft_jsonl(&bad).unwrap_err().to_string();
    assert!(err.contains("bad2.jsonl:1: invalid JSON"), "{err}");
    Ok(())
}

#[test]
fn loss_covers_completion_and_eos_only() -> Result<()> {
    let Some(tok) = tokenizer()? else {
        return Ok(());
    };
    let rec = SftRecord {
        prompt: "The capital of France is".into(),
        completion: " Paris.".into(),
        line: 1,
    };
    let mut stats = EncodeStats::default();
    let f = encode_sft(&tok, &rec, 64, Truncation::Left, &mut stats)?.expect("kept");
    let n_prompt = tok.encode(&rec.prompt, true)?.len();
    assert!(f.labels[..n_prompt].iter().all(|&l| l == IGNORE_INDEX));
    let completion: Vec<u32> = f.input_ids[n_prompt..].to_vec();
    assert_eq!(
        tok.decode(&completion[..completion.len() - 1], false)?,
        " Paris."
    );
    assert_eq!(
        *f.labels.last().expect("eos"),
        i64::from(tok.eos_ids[0]),
        "EOS must be supervised"
    );
    assert!(f.labels[n_prompt..].iter().all(|&l| l != IGNORE_INDEX));

    // A completion already ending in a stop token (as T0's `<|endoftext|>`) is not given a
    // second one; its own stop token is supervised.
    let stop = tok.eos_ids.last().copied().expect("a stop token");
    let stop_text = tok.decode(&[stop], false)?;
    let rec = SftRecord {
        completion: format!(" Paris.{stop_text}"),
        ..rec
    };
    let g = encode_sft(&tok, &rec, 64, Truncation::Left, &mut stats)?.expect("kept");
    assert_eq!(g.input_ids.len(), f.input_ids.len());
    assert_eq!(*g.labels.last().expect("stop"), i64::from(stop));
    Ok(())
}

#[test]
fn long_records_are_truncated_from_the_left_or_dropped_and_counted() -> Result<()> {
    let Some(tok) = tokenizer()? else {
        return Ok(());
    };
    let rec = SftRecord {
        prompt: "word ".repeat(50),
        completion: " end".into(),
        line: 7,
    };
    let mut stats = EncodeStats::default();
    let f = encode_sft(&tok, &rec, 16, Truncation::Left, &mut stats)?.expect("kept");
    assert_eq!(f.input_ids.len(), 16);
    assert_eq!(stats.truncated, 1);
    assert_eq!(*f.labels.last().expect("eos"), i64::from(tok.eos_ids[0]));
    assert!(encode_sft(&tok, &rec, 16, Truncation::Drop, &mut stats)?.is_none());
    assert_eq!(stats.dropped, 1);

    let batch = collate(
        &[
            f.clone(),
            tasklm_data::Features::new(vec![1, 2], vec![IGNORE_INDEX, 2]),
        ],
        0,
        &Device::Cpu,
    )?;
    let labels = batch.labels.to_vec2::<i64>()?;
    assert_eq!(labels[1][2..], vec![IGNORE_INDEX; 14][..]);
    assert_eq!(batch.key_mask[1], [vec![1, 1], vec![0; 14]].concat());
    Ok(())
}
