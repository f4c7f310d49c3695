//! `--lora` training on the tiny decoder fixture: LoRA-only updates drive the loss down while
//! the base stays byte-for-byte as it was, the output is a PEFT adapter directory that `eval`
//! loads by itself, merging keeps its outputs, resume is bit-identical, and bad targets or a
//! zero rank are refused with what exists.

use anyhow::{Context, Result};
use candle_core::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_hub::adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use tasklm_hub::{load_model, resolve, LoadOptions};
use tasklm_nn::LoraSpec;
use tasklm_tasks::{EvalJob, TaskKind, TaskOptions, TrainJob};
use tasklm_train::{LoraTraining, TrainArgs};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn write_data(dir: &Path) -> Result<PathBuf> {
    let rows = [
        (
            "What is the capital of France?",
            " The capital of France is Paris.",
        ),
        ("Where does John live?", " John lives in Paris."),
    ];
    let path = dir.join("train.jsonl");
    let body: Vec<String> = rows
        .iter()
        .map(|(p, c)| serde_json::json!({"prompt": p, "completion": c}).to_string())
        .collect();
    std::fs::write(&path, body.join("\n") + "\n")?;
    Ok(path)
}

fn lora(targets: &[&str], r: usize) -> LoraTraining {
    LoraTraining {
        spec: LoraSpec {
            r,
            alpha: 2.0 * r as f64,
            dropout: 0.0,
            rslora: false,
        },
        targets: targets.iter().map(|s| s.to_string()).collect(),
        modules_to_save: vec![],
        seed: 0,
        quantized_base: false,
    }
}

fn job(data: &Path, out: &Path, steps: u64, l: LoraTraining) -> TrainJob {
    TrainJob {
        eval: Some(data.to_path_buf()),
        max_seq_len: Some(64),
        args: TrainArgs {
            max_steps: Some(steps),
            batch_size: 2,
            lr: 2e-2,
            warmup_ratio: 0.0,
            save_every: 3,
            save_total_limit: 10,
            ..TrainArgs::default()
        },
        options: TaskOptions {
            lora: Some(l),
            ..TaskOptions::default()
        },
        ..TrainJob::new(
            TaskKind::Sft,
            fixture("tiny_decoder").to_str().unwrap_or_default(),
            data.to_path_buf(),
            out.to_path_buf(),
        )
    }
}

fn bytes(t: &candle_core::Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|v| v.to_bits())
        .collect())
}

fn eval_loss(model: &Path, data: &Path) -> Result<f64> {
    let r = tasklm_tasks::evaluate(
        &EvalJob {
            max_seq_len: Some(64),
            batch_size: 2,
            ..EvalJob::new(
                TaskKind::Sft,
                model.to_str().unwrap_or_default(),
                data.into(),
            )
        },
        &|_: &str| {},
    )?;
    r.metric_f64("loss").context("eval loss")
}

#[test]
fn lora_training_lowers_the_loss_and_writes_a_peft_adapter() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = write_data(tmp.path())?;
    let out = tmp.path().join("out");
    // The fixture's random head (std 0.02) bounds its logits near zero, so the head trains in
    // full as PEFT's modules_to_save, and every other linear layer gets an adapter.
    let l = LoraTraining {
        modules_to_save: vec!["lm_head".into()],
        ..lora(&["all-linear"], 8)
    };
    let report = tasklm_tasks::train(&job(&data, &out, 30, l), &|_| {})?;
    let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
    assert!(last < 0.2 * first, "loss {first} -> {last}");

    // A PEFT adapter directory: no config.json or model.safetensors beside it.
    for f in [
        ADAPTER_CONFIG,
        ADAPTER_WEIGHTS,
        "tokenizer.json",
        "tasklm.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(!out.join("config.json").exists() && !out.join("model.safetensors").exists());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(ADAPTER_CONFIG))?)?;
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["r"], 8);
    let targets = serde_json::json!([
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj"
    ]);
    assert_eq!(cfg["target_modules"], targets);
    let saved = candle_core::safetensors::load(out.join(ADAPTER_WEIGHTS), &Device::Cpu)?;
    assert_eq!(cfg["modules_to_save"], serde_json::json!(["lm_head"]));
    // 2 layers x 7 projections x (A, B), and the head saved whole: nothing else of the base.
    assert_eq!(saved.len(), 29);
    let head = "base_model.model.lm_head.weight";
    assert!(saved.keys().all(|k| k == head
        || (k.starts_with("base_model.model.model.layers.")
            && (k.ends_with(".lora_A.weight") || k.ends_with(".lora_B.weight")))));
    let ck_weights = candle_core::safetensors::load(
        out.join("checkpoints/step-00000030/model.safetensors"),
        &Device::Cpu,
    )?;
    assert_eq!(ck_weights.len(), 29, "a checkpoint holds the adapter only");

    // The base the adapter loads over is the fixture, bit for bit (the head is the adapter's).
    let source = resolve(out.to_str().context("path")?, false)?;
    let ck = load_model(&source, LoadOptions::default(), &Device::Cpu)?;
    let base: HashMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(fixture("tiny_decoder/model.safetensors"), &Device::Cpu)?;
    for (k, t) in base.iter().filter(|(k, _)| *k != "lm_head.weight") {
        assert_eq!(bytes(t)?, bytes(&ck.tensors[k])?, "{k} changed");
    }

    // `eval --model OUT` finds the base through adapter_config.json; merged, the same loss.
    let adapted = eval_loss(&out, &data)?;
    let final_eval = report.metric_f64("loss").context("final eval")?;
    assert!(
        (adapted - final_eval).abs() < 1e-6,
        "{adapted} vs {final_eval}"
    );
    assert!(adapted < 0.2 * first);
    let merged = tmp.path().join("merged");
    tasklm_hub::write_merged(&source, &merged)?;
    assert!(merged.join("config.json").is_file() && merged.join("model.safetensors").is_file());
    let m = eval_loss(&merged, &data)?;
    assert!(
        (m - adapted).abs() < 1e-4,
        "merged {m} vs adapted {adapted}"
    );
    Ok(())
}

#[test]
fn lora_resume_is_bit_identical() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = write_data(tmp.path())?;
    let full = tmp.path().join("full");
    let l = lora(&["q_proj", "v_proj"], 4);
    let run = tasklm_tasks::train(&job(&data, &full, 6, l.clone()), &|_| {})?;
    let cut = tmp.path().join("cut");
    let step = "checkpoints/step-00000003";
    std::fs::create_dir_all(cut.join(step))?;
    for e in std::fs::read_dir(full.join(step))? {
        let p = e?.path();
        std::fs::copy(&p, cut.join(step).join(p.file_name().context("name")?))?;
    }
    let resumed = TrainJob {
        resume: true,
        ..job(&data, &cut, 6, l)
    };
    let rest = tasklm_tasks::train(&resumed, &|_| {})?;
    assert_eq!(
        rest.losses[..],
        run.losses[3..],
        "losses differ after resume"
    );
    assert_eq!(
        std::fs::read(full.join(ADAPTER_WEIGHTS))?,
        std::fs::read(cut.join(ADAPTER_WEIGHTS))?,
        "the adapter differs after resume"
    );
    Ok(())
}

#[test]
fn targets_that_match_nothing_and_rank_zero_are_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = write_data(tmp.path())?;
    let err = tasklm_tasks::train(
        &job(&data, &tmp.path().join("a"), 1, lora(&["query"], 4)),
        &|_| {},
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("--lora-targets `query` matches no linear layer")
            && err
                .contains("down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"),
        "{err}"
    );
    let err = tasklm_tasks::train(&job(&data, &tmp.path().join("b"), 1, lora(&[], 0)), &|_| {})
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("rank r must be at least 1"), "{err}");
    Ok(())
}

#[test]
fn lora_on_an_encoder_trains_the_head_in_full_and_writes_seq_cls() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let rows = [
        ("a wonderful, moving film with a great cast", "positive"),
        ("a dull and boring movie, the worst of the year", "negative"),
        ("i loved every minute of this beautiful picture", "positive"),
        ("an awful mess, i hated it and left early", "negative"),
    ];
    let body: Vec<String> = rows
        .iter()
        .map(|(t, l)| serde_json::json!({"text": t, "label": l}).to_string())
        .collect();
    let data = tmp.path().join("train.jsonl");
    std::fs::write(&data, body.join("\n") + "\n")?;
    let out = tmp.path().join("clf");
    let mut j = job(&data, &out, 80, lora(&[], 4));
    j.args.lr = 5e-2;
    j.task = TaskKind::Classify;
    j.model = fixture("tiny_encoder").to_string_lossy().into_owned();
    j.args.batch_size = 4;
    let report = tasklm_tasks::train(&j, &|_| {})?;
    let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(ADAPTER_CONFIG))?)?;
    assert_eq!(cfg["task_type"], "SEQ_CLS");
    assert_eq!(cfg["target_modules"], serde_json::json!(["query", "value"]));
    assert_eq!(cfg["modules_to_save"], serde_json::json!(["classifier"]));
    let saved = candle_core::safetensors::load(out.join(ADAPTER_WEIGHTS), &Device::Cpu)?;
    // 2 layers x (query, value) x (A, B), and the fresh head saved whole.
    assert_eq!(saved.len(), 10);
    assert!(saved.contains_key("base_model.model.classifier.weight"));
    assert!(saved
        .contains_key("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"));
    // The adapter directory evaluates by itself (labels from its config.json), as its merge.
    let acc = |model: &Path| -> Result<f64> {
        let r = tasklm_tasks::evaluate(
            &EvalJob {
                batch_size: 4,
                ..EvalJob::new(
                    TaskKind::Classify,
                    model.to_str().unwrap_or_default(),
                    data.clone(),
                )
            },
            &|_: &str| {},
        )?;
        r.metric_f64("accuracy").context("accuracy")
    };
    let adapted = acc(&out)?;
    assert_eq!(Some(adapted), report.metric_f64("accuracy"));
    let merged = tmp.path().join("merged");
    tasklm_hub::write_merged(&resolve(out.to_str().context("path")?, false)?, &merged)?;
    assert_eq!(acc(&merged)?, adapted);
    Ok(())
}
