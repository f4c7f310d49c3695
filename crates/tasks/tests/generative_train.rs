//! Generative training reads its data the way eval does: a translation prefix stands for its two
//! line-aligned sides, and `tasklm.json` records each side with its sha256. Runs on the real
//! SmolLM2-135M-Instruct; skips when the model is not cached (CI pulls it and requires it).

use anyhow::Result;
use tasklm_data::Truncation;
use tasklm_hub::testing::catalog_model;
use tasklm_tasks::generative::{train, GenData, GenTask};
use tasklm_tasks::sft::SftJob;
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
    let data = GenData {
        task: GenTask::Translate,
        path: prefix.clone(),
        langs: Some(("en".into(), "de".into())),
    };
    let out = tmp.path().join("out");
    let job = SftJob {
        model: "smollm2-135m-instruct".into(),
        data: prefix.clone(),
        eval: Some(prefix.clone()),
        out: out.clone(),
        max_seq_len: Some(64),
        truncation: Truncation::Left,
        pack: false,
        args: TrainArgs {
            max_steps: Some(1),
            batch_size: 2,
            ..TrainArgs::default()
        },
        resume: false,
        progress: false,
        stop: None,
    };
    let report = train(&data, Some(&data), &job, &|_: &str| {})?;
    assert_eq!(report.summary.steps, 1);
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
