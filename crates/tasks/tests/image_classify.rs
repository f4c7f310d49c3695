//! `--task image-classify` end to end on generated images (no shared data): a ViT from a
//! `config.json` alone (fresh weights) and the tiny pretrained fixture (a fresh head for new
//! labels) overfit a tiny labelled batch; the trained directory evaluates to accuracy 1,
//! predicts each image's label, and reloads as a `ViTForImageClassification` through the
//! registry (`hub::load_vision`).

use anyhow::Result;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use tasklm_tasks::{EvalJob, PredictJob, TaskKind, TrainJob};
use tasklm_train::TrainArgs;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// `n` images per class in `dir/CLASS/`: red squares and blue discs, placed and sized by `i`.
fn write_images(dir: &Path, n: u32) -> Result<()> {
    for class in ["disc", "square"] {
        std::fs::create_dir_all(dir.join(class))?;
        for i in 0..n {
            let (cx, cy, r) = (12 + 3 * (i % 3), 14 + 2 * (i % 4), 6 + (i % 3));
            let img = RgbImage::from_fn(32, 32, |x, y| {
                let (dx, dy) = (x as i64 - cx as i64, y as i64 - cy as i64);
                let inside = match class {
                    "disc" => dx * dx + dy * dy <= (r * r) as i64,
                    _ => dx.abs() <= r as i64 && dy.abs() <= r as i64,
                };
                match (inside, class) {
                    (true, "disc") => Rgb([30, 40, 220]),
                    (true, _) => Rgb([220, 40, 30]),
                    _ => Rgb([240, 240, 240]),
                }
            });
            img.save(dir.join(class).join(format!("{i}.png")))?;
        }
    }
    Ok(())
}

fn job(model: &Path, data: &Path, out: &Path) -> TrainJob {
    TrainJob {
        args: TrainArgs {
            max_steps: Some(100),
            batch_size: 8,
            lr: 2e-3,
            warmup_ratio: 0.0,
            save_every: 0,
            ..TrainArgs::default()
        },
        ..TrainJob::new(
            TaskKind::ImageClassify,
            &model.to_string_lossy(),
            data.to_path_buf(),
            out.to_path_buf(),
        )
    }
}

fn train_eval_predict(model: &Path, tmp: &Path, notice: &str) -> Result<()> {
    let data = tmp.join("images");
    write_images(&data, 4)?;
    let out = tmp.join("out");
    let notices = std::cell::RefCell::new(Vec::new());
    let keep = |m: &str| notices.borrow_mut().push(m.to_string());
    let r = tasklm_tasks::train(&job(model, &data, &out), &keep)?;
    let first = r.losses.first().copied().unwrap_or(0.0);
    let last = r.losses.last().copied().unwrap_or(f64::MAX);
    assert!(
        last < 0.05,
        "the tiny batch was not learned: loss {first} -> {last}"
    );
    assert_eq!((r.count_of("steps"), r.count_of("records")), (100, 8));

    let eval = tasklm_tasks::evaluate(
        &EvalJob::new(
            TaskKind::ImageClassify,
            &out.to_string_lossy(),
            data.clone(),
        ),
        &|_| {},
    )?;
    assert_eq!(eval.metric_f64("accuracy"), Some(1.0));
    assert_eq!(eval.count_of("n"), 8);

    let p = tasklm_tasks::predictor(&PredictJob::new(
        TaskKind::ImageClassify,
        &out.to_string_lossy(),
    ))?;
    for class in ["disc", "square"] {
        let image = data.join(class).join("2.png");
        let v = p.predict(&serde_json::json!({"image": image.to_string_lossy()}))?;
        assert_eq!(v["label"], class, "{v}");
        assert!(v["score"].as_f64().is_some_and(|s| s > 0.5), "{v}");
    }
    let err = p.predict(&serde_json::json!({"text": "x"})).err();
    assert!(err.is_some_and(|e| e.to_string().contains("`image`")));

    // The directory is a ViTForImageClassification with its labels and processor.
    let ck = tasklm_hub::load_vision_dir(&out, candle_core::DType::F32, &candle_core::Device::Cpu)?;
    assert_eq!(
        ck.labels,
        Some(vec!["disc".to_string(), "square".to_string()])
    );
    assert_eq!(
        ck.config_json["architectures"][0],
        "ViTForImageClassification"
    );
    assert!(
        ck.tensors.contains_key("vit.embeddings.cls_token")
            && ck.tensors.contains_key("classifier.weight")
    );
    assert!(out.join("preprocessor_config.json").is_file() && out.join("tasklm.json").is_file());
    let notices = notices.into_inner();
    assert!(notices.iter().any(|n| n.contains(notice)), "{notices:?}");
    Ok(())
}

#[test]
fn a_vit_from_its_config_alone_learns_a_tiny_batch() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cfg_dir = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg_dir)?;
    std::fs::copy(fixture("tiny_vit/config.json"), cfg_dir.join("config.json"))?;
    // --model may name the config.json itself.
    train_eval_predict(
        &cfg_dir.join("config.json"),
        tmp.path(),
        "has no weights: a ViT initialised from its config.json",
    )
}

#[test]
fn the_pretrained_tiny_vit_gets_a_fresh_head_and_learns_a_tiny_batch() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    train_eval_predict(
        &fixture("tiny_vit"),
        tmp.path(),
        "a fresh classifier for 2 labels (disc, square)",
    )
}
