//! `--task retrieval` on the tiny sentence-transformers fixture (`tests/fixtures/tiny_retriever`,
//! written by `scripts/golden/mnrl.py`): the multiple-negatives ranking loss and every
//! parameter's gradient match sentence-transformers', a tiny batch overfits, the trained
//! directory is a sentence-transformers directory that `Embedder` reads back with the same
//! vectors, an interrupted run resumes exactly, and bad data is an error naming file and line.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tasklm_tasks::retrieval::model::Retriever;
use tasklm_tasks::retrieval::objective::{EncodedPair, RetrievalObjective};
use tasklm_tasks::retrieval::pairs::Pair;
use tasklm_tasks::{PredictJob, TaskKind, TrainJob};
use tasklm_train::TrainArgs;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn golden() -> Result<(Value, HashMap<String, Tensor>)> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(fixture("mnrl_golden.json"))?)?;
    let tensors = candle_core::safetensors::load(fixture("mnrl_golden.safetensors"), &Device::Cpu)?;
    Ok((json, tensors))
}

fn texts(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

fn retriever() -> Result<Retriever> {
    let source = tasklm_hub::ModelSource::HfDir(fixture("tiny_retriever"));
    let ck = tasklm_hub::load_encoder(&source, &Device::Cpu)?;
    Ok(Retriever::new(ck, None)?)
}

/// The golden batch as an objective; `negatives` adds the hard negatives.
fn golden_objective(g: &Value, negatives: bool) -> Result<RetrievalObjective> {
    let model = retriever()?;
    let (q, p, n) = (
        texts(g, "queries"),
        texts(g, "positives"),
        texts(g, "negatives"),
    );
    let mut pairs = Vec::new();
    let mut rows = Vec::new();
    for i in 0..q.len() {
        let negative = negatives.then(|| n[i].clone());
        rows.push(EncodedPair {
            query: model.encode(&q[i])?.0,
            positive: model.encode(&p[i])?.0,
            negative: match &negative {
                Some(t) => Some(model.encode(t)?.0),
                None => None,
            },
        });
        pairs.push(Pair {
            query: q[i].clone(),
            positive: p[i].clone(),
            negative,
        });
    }
    Ok(RetrievalObjective {
        model,
        pairs,
        rows,
        eval: Vec::new(),
        scale: g["scale"].as_f64().context("scale")?,
        provenance: Value::Null,
    })
}

fn max_abs(t: &Tensor) -> Result<f32> {
    Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn loss_embeddings_and_gradients_match_sentence_transformers() -> Result<()> {
    let (g, t) = golden()?;
    let model = retriever()?;
    let long = texts(&g, "positives")[0].clone();
    assert!(
        model.encode(&long)?.1,
        "the golden batch exercises cutting at max_seq_length 24"
    );
    // Embeddings: pooling over the mask and normalisation as modules.json says (1e-5).
    for (key, name) in [
        ("queries", "query_embeddings"),
        ("positives", "positive_embeddings"),
    ] {
        let rows: Vec<Vec<u32>> = texts(&g, key)
            .iter()
            .map(|s| Ok(model.encode(s)?.0))
            .collect::<Result<_>>()?;
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let ours = model.embed(&refs, false)?;
        let diff = max_abs(&(ours - &t[name])?)?;
        assert!(diff < 1e-5, "{name}: max |diff| {diff}");
    }
    // The loss with and without hard negatives (1e-5).
    for (negatives, key) in [
        (true, "loss_with_negatives"),
        (false, "loss_without_negatives"),
    ] {
        let obj = golden_objective(&g, negatives)?;
        let (sum, n, _) = obj.loss(&[0, 1, 2, 3], false)?;
        let ours = f64::from(sum.to_scalar::<f32>()?) / n as f64;
        let want = g[key].as_f64().context("loss")?;
        assert!(
            (ours - want).abs() < 1e-5,
            "{key}: tasklm {ours}, sentence-transformers {want}"
        );
    }
    // Every parameter's gradient of the mean loss with negatives: max |diff| within 1e-4 of
    // the tensor's largest gradient entry, or 1e-7 absolute where the gradient is zero in
    // exact arithmetic (the key biases: softmax does not see them) and both sides hold noise.
    let obj = golden_objective(&g, true)?;
    let (sum, n, _) = obj.loss(&[0, 1, 2, 3], false)?;
    let grads = (sum / n as f64)?.backward()?;
    let mut checked = 0;
    for (name, var) in obj.model.params() {
        let Some(want) = t.get(&format!("grad.{name}")) else {
            assert!(name.starts_with("pooler."), "no golden gradient for {name}");
            continue;
        };
        let ours = grads
            .get(var.as_tensor())
            .with_context(|| format!("no gradient for {name}"))?;
        let diff = max_abs(&(ours - want)?)?;
        let scale = max_abs(want)?.max(1e-8);
        assert!(
            diff <= (1e-4 * scale).max(1e-7),
            "{name}: max |diff| {diff}, max |grad| {scale}"
        );
        checked += 1;
    }
    assert_eq!(checked, t.keys().filter(|k| k.starts_with("grad.")).count());
    Ok(())
}

fn write_pairs(dir: &Path, g: &Value) -> Result<PathBuf> {
    let path = dir.join("pairs.jsonl");
    let lines: Vec<String> = texts(g, "queries")
        .into_iter()
        .zip(texts(g, "positives"))
        .map(|(q, p)| serde_json::json!({"query": q, "positive": p}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n")?;
    Ok(path)
}

fn job(data: &Path, out: &Path, max_steps: u64) -> TrainJob {
    TrainJob {
        args: TrainArgs {
            max_steps: Some(max_steps),
            batch_size: 4,
            lr: 2e-3,
            save_every: 0,
            ..TrainArgs::default()
        },
        ..TrainJob::new(
            TaskKind::Retrieval,
            &fixture("tiny_retriever").to_string_lossy(),
            data.to_path_buf(),
            out.to_path_buf(),
        )
    }
}

#[test]
fn a_tiny_batch_overfits_and_the_directory_embeds_as_trained() -> Result<()> {
    let (g, _) = golden()?;
    let tmp = tempfile::tempdir()?;
    let data = write_pairs(tmp.path(), &g)?;
    let out = tmp.path().join("out");
    let r = tasklm_tasks::train(&job(&data, &out, 40), &|_| {})?;
    let (first, last) = (r.losses[0], r.losses[r.losses.len() - 1]);
    assert!(first > 1.0, "starts near ln 4: {first}");
    assert!(last < 0.05, "the batch is learnt: {first} -> {last}");
    // A sentence-transformers directory.
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "tasklm.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let weights = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)?;
    assert!(
        weights.contains_key("embeddings.word_embeddings.weight"),
        "bare BertModel names"
    );
    assert!(!weights.keys().any(|k| k.starts_with("bert.")));
    let sbert: Value = serde_json::from_str(&std::fs::read_to_string(
        out.join("sentence_bert_config.json"),
    )?)?;
    assert_eq!(sbert["max_seq_length"], 24);
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(out.join("tasklm.json"))?)?;
    assert_eq!(meta["task"], "retrieval");
    assert_eq!(meta["loss"]["scale"], 20.0);
    // Embedder (tasklm embed, index) and the task's predictor give the same vectors.
    let embedder = tasklm_hub::Embedder::load(&tasklm_hub::ModelSource::HfDir(out.clone()))?;
    let predictor = tasklm_tasks::predictor(&PredictJob::new(
        TaskKind::Retrieval,
        &out.to_string_lossy(),
    ))?;
    let queries = texts(&g, "queries");
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let a = embedder.embed_texts(&refs, 8)?;
    for (q, v) in queries.iter().zip(&a) {
        let p = predictor.predict(&serde_json::json!({"text": q}))?;
        let b: Vec<f32> = serde_json::from_value(p["embedding"].clone())?;
        let cos = tasklm_hub::embed::cosine(v, &b);
        assert!(cos > 1.0 - 1e-5, "{q}: cosine {cos}");
    }
    // Each trained query finds its own positive first.
    let eval = tasklm_tasks::evaluate(
        &tasklm_tasks::EvalJob::new(TaskKind::Retrieval, &out.to_string_lossy(), data),
        &|_| {},
    )?;
    assert_eq!(eval.metric_f64("recall@1"), Some(1.0));
    Ok(())
}

#[test]
fn an_interrupted_run_resumes_exactly() -> Result<()> {
    let (g, _) = golden()?;
    let tmp = tempfile::tempdir()?;
    let data = write_pairs(tmp.path(), &g)?;
    let whole = tasklm_tasks::train(&job(&data, &tmp.path().join("whole"), 4), &|_| {})?;
    let out = tmp.path().join("split");
    let stop = Arc::new(AtomicBool::new(true));
    let first = TrainJob {
        stop: Some(stop),
        ..job(&data, &out, 4)
    };
    let err = tasklm_tasks::train(&first, &|_| {})
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|m| m.contains("interrupted after update 1")));
    let rest = tasklm_tasks::train(
        &TrainJob {
            resume: true,
            ..job(&data, &out, 4)
        },
        &|_| {},
    )?;
    assert_eq!(
        rest.losses,
        whole.losses[1..],
        "the resumed run takes the same updates"
    );
    let a = std::fs::read(tmp.path().join("whole/model.safetensors"))?;
    let b = std::fs::read(out.join("model.safetensors"))?;
    assert!(!a.is_empty() && a == b, "the same weights");
    // A finished run continued further (--resume with more steps) rewrites its folders too.
    let more = tasklm_tasks::train(
        &TrainJob {
            resume: true,
            ..job(&data, &tmp.path().join("whole"), 5)
        },
        &|_| {},
    )?;
    assert_eq!(more.losses.len(), 1);
    assert!(tmp.path().join("whole/1_Pooling/config.json").is_file());
    Ok(())
}

#[test]
fn bad_pairs_are_errors_naming_the_file_line_and_field() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"query\": \"a\", \"positive\": \"b\"}\n{\"query\": \"c\", \"positve\": \"d\"}\n",
    )?;
    let err = tasklm_tasks::train(&job(&data, &tmp.path().join("o"), 1), &|_| {})
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("bad.jsonl:2") && err.contains("`positive`"),
        "{err}"
    );
    let lora = TrainJob {
        options: tasklm_tasks::TaskOptions {
            lora: Some(tasklm_train::LoraTraining {
                spec: tasklm_nn::lora::LoraSpec {
                    r: 4,
                    alpha: 8.0,
                    dropout: 0.0,
                    rslora: false,
                },
                targets: Vec::new(),
                modules_to_save: Vec::new(),
                seed: 0,
                quantized_base: false,
            }),
            ..Default::default()
        },
        ..job(&data, &tmp.path().join("o"), 1)
    };
    let err = tasklm_tasks::train(&lora, &|_| {})
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|m| m.contains("--lora does not apply to --task retrieval")));
    Ok(())
}
