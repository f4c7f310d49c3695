//! Generative training reads its data the way eval does: a translation prefix stands for its two
//! line-aligned sides, and `tasklm.json` records each side with its sha256. Runs on the real
//! SmolLM2-135M-Instruct; skips when the model is not cached (CI pulls it and requires it).

use anyhow::Result;
use tasklm_data::Truncation;
use tasklm_hub::testing::catalog_model;
use tasklm_tasks::{TaskKind, TaskOptions, TrainJob};
use tasklm_train::TrainArgs;

#[test]
fn translation_trains_from_a_line_aligned_prefix_and_hashes_both_sides() -> Result<()> {
    if catalog_model("smollm2-135m-instruct")?.is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let prefix = tmp.path().join("pairs");
    std::fs::write(tmp.path().join("pairs.en"), "A dog runs.\nTwo men talk.\n")?;
    std::fs::write(
        tmp.path().join("pairs.de"),
        "Ein Hund rennt.\nZwei Männer reden.\n",
    )?;
    let out = tmp.path().join("out");
    let job = TrainJob {
        eval: Some(prefix.clone()),
        max_seq_len: Some(64),
        truncation: Truncation::Left,
        args: TrainArgs {
            max_steps: Some(1),
            batch_size: 2,
            ..TrainArgs::default()
        },
        options: TaskOptions {
            langs: Some(("en".into(), "de".into())),
            ..TaskOptions::default()
        },
        ..TrainJob::new(
            TaskKind::Translate,
            "smollm2-135m-instruct",
            prefix.clone(),
            out.clone(),
        )
    };
    let report = tasklm_tasks::train(&job, &|_: &str| {})?;
    assert_eq!(report.count_of("steps"), 1);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tasklm.json"))?)?;
    assert_eq!(meta["task"], "translate");
    assert_eq!(meta["langs"], serde_json::json!(["en", "de"]));
    assert!(meta.get("data_files").is_none());
    for split in ["train", "eval"] {
        let entry = &meta["data"][split];
        assert_eq!(entry["records"], 2, "{split}: {entry}");
        let files = entry["files"].as_array().expect("files");
        let names: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
        assert!(
            names[0].ends_with("pairs.en") && names[1].ends_with("pairs.de"),
            "{names:?}"
        );
        assert!(files
            .iter()
            .all(|f| f["sha256"].as_str().map(str::len) == Some(64)));
    }
    Ok(())
}
