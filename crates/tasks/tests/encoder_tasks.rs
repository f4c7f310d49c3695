//! Encoder tasks on the real all-minilm-l6-v2 (skipped when the model is not cached): pair
//! encoding gives transformers' ids, classification overfits a tiny batch and writes a
//! `BertForSequenceClassification` directory that reloads with the same predictions, NER
//! learns a tiny tag set and returns entities with character offsets.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_encoder, ModelSource};
use tasklm_tasks::classify::{EncoderClassifier, LabelExample};
use tasklm_tasks::common::encoder_input::PairEncoder;
use tasklm_tasks::{PredictJob, TaskKind, TrainJob};
use tasklm_train::TrainArgs;

fn job(
    task: TaskKind,
    model: &Path,
    data: &Path,
    out: &Path,
    (epochs, lr): (u32, f64),
) -> TrainJob {
    TrainJob {
        max_seq_len: Some(32),
        args: TrainArgs {
            epochs,
            batch_size: 8,
            lr,
            warmup_ratio: 0.0,
            ..TrainArgs::default()
        },
        ..TrainJob::new(
            task,
            &model.to_string_lossy(),
            data.to_path_buf(),
            out.to_path_buf(),
        )
    }
}

#[test]
fn pair_encoding_matches_transformers() -> Result<()> {
    let Some(dir) = catalog_model("all-minilm-l6-v2")? else {
        return Ok(());
    };
    let g = candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/minilm_golden.safetensors"
        ),
        &candle_core::Device::Cpu,
    )?;
    let ck = load_encoder(&ModelSource::HfDir(dir), &candle_core::Device::Cpu)?;
    let enc = PairEncoder {
        tokenizer: ck.tokenizer,
        cls_id: ck.cls_id,
        sep_id: ck.sep_id,
        max_len: 128,
    };
    let ((ids, types), cut) = enc.encode(
        "Where is the Eiffel Tower?",
        Some("The Eiffel Tower is in Paris, France, on the Champ de Mars."),
    )?;
    assert!(!cut);
    let n = ids.len();
    let want_ids: Vec<u32> = g["input_ids"].get(2)?.to_vec1::<i64>()?[..n]
        .iter()
        .map(|&i| i as u32)
        .collect();
    let want_types: Vec<u32> = g["token_type_ids"].get(2)?.to_vec1::<i64>()?[..n]
        .iter()
        .map(|&i| i as u32)
        .collect();
    assert_eq!(ids, want_ids);
    assert_eq!(types, want_types);
    // Cut to 12 tokens: 9 of text in all, the shorter question keeps what half allows.
    let ((short, _), cut) = PairEncoder { max_len: 12, ..enc }.encode(
        "Where is the Eiffel Tower?",
        Some("The Eiffel Tower is in Paris, France, on the Champ de Mars."),
    )?;
    assert!(cut && short.len() == 12, "{short:?}");
    Ok(())
}

#[test]
fn classification_overfits_and_the_written_model_reloads() -> Result<()> {
    let Some(model) = catalog_model("all-minilm-l6-v2")? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("train.jsonl");
    let rows = [
        ("a wonderful, moving film", "pos"),
        ("brilliant acting and a clever script", "pos"),
        ("an instant classic", "pos"),
        ("charming, funny and warm", "pos"),
        ("a dull and boring mess", "neg"),
        ("painfully stupid and far too long", "neg"),
        ("a waste of two hours", "neg"),
        ("the worst film of the year", "neg"),
    ];
    let text: String = rows
        .iter()
        .map(|(t, l)| format!("{}\n", json!({"text": t, "label": l})))
        .collect();
    std::fs::write(&data, text)?;
    let out = tmp.path().join("out");
    let job = job(TaskKind::Classify, &model, &data, &out, (20, 3e-4));
    let report = tasklm_tasks::train(&job, &|_| {})?;
    assert_eq!(report.count_of("steps"), 20);
    let last = *report.losses.last().context("a loss was logged")?;
    assert!(last < 0.1, "final loss {last} did not overfit");

    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json"))?)?;
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["id2label"]["0"], "neg");
    assert_eq!(cfg["label2id"]["pos"], 1);
    let names =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)?;
    for k in [
        "bert.embeddings.word_embeddings.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
    ] {
        assert!(names.contains_key(k), "model.safetensors lacks {k}");
    }

    let p = tasklm_tasks::predictor(&PredictJob::new(
        TaskKind::Classify,
        out.to_str().context("utf-8 path")?,
    ))?;
    for (t, l) in rows {
        let a = p.predict(&json!({ "text": t }))?;
        assert_eq!(a["label"], l, "{t}: {a}");
        assert!(a["score"].as_f64().unwrap_or(0.0) > 0.5);
    }
    let ck = load_encoder(&ModelSource::HfDir(out.clone()), &candle_core::Device::Cpu)?;
    let clf = EncoderClassifier::new(ck, None, 32, TaskKind::Classify, None)?;
    assert!(clf.trained_head, "the saved head is used");
    let probs = clf.probabilities(&[LabelExample {
        fields: vec![("text".into(), "an instant classic".into())],
        label: None,
    }])?;
    assert!((probs[0].iter().sum::<f64>() - 1.0).abs() < 1e-6);
    Ok(())
}

#[test]
fn ner_learns_tags_and_returns_character_offsets() -> Result<()> {
    let Some(model) = catalog_model("all-minilm-l6-v2")? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("train.txt");
    let sentences = [
        "Peter B-PER\nvisited O\nParis B-LOC\n. O\n",
        "Anna B-PER\nSmith I-PER\nlives O\nin O\nBerlin B-LOC\n",
        "John B-PER\nflew O\nto O\nRome B-LOC\n",
        "Maria B-PER\nloves O\nMadrid B-LOC\n",
    ];
    std::fs::write(&data, sentences.join("\n"))?;
    let out = tmp.path().join("out");
    let report = tasklm_tasks::train(
        &job(TaskKind::Ner, &model, &data, &out, (40, 3e-4)),
        &|_| {},
    )?;
    let last = *report.losses.last().context("a loss was logged")?;
    assert!(last < 0.1, "final loss {last} did not overfit");
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json"))?)?;
    assert_eq!(cfg["architectures"][0], "BertForTokenClassification");
    assert_eq!(cfg["id2label"]["0"], "O");

    let tagger = tasklm_tasks::predictor(&PredictJob::new(
        TaskKind::Ner,
        out.to_str().context("utf-8 path")?,
    ))?;
    let text = "Anna Smith visited Rome.";
    let a = tagger.predict(&json!({ "text": text }))?;
    let ents = a["entities"].as_array().context("entities")?;
    let got: Vec<(String, String, u64, u64)> = ents
        .iter()
        .map(|e| {
            (
                e["entity"].as_str().unwrap_or_default().to_string(),
                e["type"].as_str().unwrap_or_default().to_string(),
                e["start"].as_u64().unwrap_or(0),
                e["end"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("Anna Smith".into(), "PER".into(), 0, 10),
            ("Rome".into(), "LOC".into(), 19, 23)
        ],
        "{a}"
    );
    Ok(())
}

#[test]
fn words_split_like_bert_with_character_offsets() {
    let chars: Vec<char> = "Zoë's café, 2024!".chars().collect();
    let spans = tasklm_tasks::ner::split_words(&chars);
    let words: Vec<String> = spans
        .iter()
        .map(|&(s, e)| chars[s..e].iter().collect())
        .collect();
    assert_eq!(words, ["Zoë", "'", "s", "café", ",", "2024", "!"]);
    assert_eq!(spans[3], (6, 10), "offsets count characters, not bytes");
}

#[test]
fn qa_windows_overlap_and_labels_point_at_the_answer() -> Result<()> {
    use tasklm_tasks::qa::{EncoderQa, QaSettings};
    let Some(dir) = catalog_model("all-minilm-l6-v2")? else {
        return Ok(());
    };
    let ck = load_encoder(&ModelSource::HfDir(dir), &candle_core::Device::Cpu)?;
    let settings = QaSettings {
        max_len: 32,
        doc_stride: 8,
        ..QaSettings::default()
    };
    let qa = EncoderQa::new(ck, settings, None)?;
    let context = "The tower was built in 1889 for the World's Fair. It stands on the Champ \
                   de Mars in Paris, the capital of France, and it is visited by millions of \
                   people every year, most of them in summer when the days are long.";
    let answer = "Champ de Mars";
    let start = context.find(answer).context("answer in context")?;
    let windows = qa.windows("Where is the tower?", context)?;
    assert!(windows.len() >= 3, "{} windows", windows.len());
    let (mut holding, mut without) = (0, 0);
    for (i, w) in windows.iter().enumerate() {
        assert!(w.ids.len() <= 32);
        if let Some(next) = windows.get(i + 1) {
            let n = w.offsets.len();
            assert_eq!(
                &w.offsets[n - 8..],
                &next.offsets[..8],
                "windows share 8 tokens"
            );
        }
        let (a, b) = EncoderQa::label(w, start, start + answer.len());
        if a == 0 {
            without += 1;
            assert_eq!(b, 0);
            continue;
        }
        holding += 1;
        let (a, b) = (a as usize - w.ctx_pos, b as usize - w.ctx_pos);
        assert_eq!(&context[w.offsets[a].0..w.offsets[b].1], answer);
    }
    assert!(
        holding >= 1 && without >= 1,
        "{holding} windows hold it, {without} do not"
    );
    Ok(())
}

#[test]
fn every_encoder_task_refuses_a_decoder_before_training() -> Result<()> {
    // QA training once skipped the check that eval makes; the shared runner makes it for all.
    let Some(model) = catalog_model("smollm2-135m-instruct")? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("squad.jsonl");
    std::fs::write(
        &data,
        "{\"context\": \"Paris is in France.\", \"question\": \"Where is Paris?\", \"answers\": {\"text\": [\"France\"], \"answer_start\": [12]}}\n",
    )?;
    let conll = tmp.path().join("ner.txt");
    std::fs::write(&conll, "Paris B-LOC\n")?;
    for (task, file) in [(TaskKind::Qa, &data), (TaskKind::Ner, &conll)] {
        let out = tmp.path().join(format!("out-{task}"));
        let err = tasklm_tasks::train(&job(task, &model, file, &out, (1, 1e-4)), &|_| {})
            .err()
            .with_context(|| format!("{task} trained on a decoder"))?;
        assert!(
            err.to_string()
                .contains(&format!("{task} needs an encoder model")),
            "{task}: {err}"
        );
        assert!(!out.join("model.safetensors").exists());
    }
    Ok(())
}
