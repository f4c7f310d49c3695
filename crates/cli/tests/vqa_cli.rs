//! `--task vqa` from the command line, on the easy-VQA layout (questions.json triples and
//! images/ID.png): a LLaVA built from the tiny CLIP tower and the tiny decoder learns four
//! questions about two images; `eval` scores them per question type, `predict` answers
//! {"image", "question"}; the trained directory is a whole LLaVA (frozen tower included).

mod plumbing;

use plumbing::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn vqa_trains_evaluates_and_predicts_on_the_easy_vqa_layout() {
    let d = scratch("vqa-cli");
    std::fs::create_dir_all(d.join("images")).unwrap();
    for (id, rgb) in [(0, [220u8, 20, 20]), (1, [20, 20, 220])] {
        image::RgbImage::from_pixel(32, 32, image::Rgb(rgb))
            .save(d.join(format!("images/{id}.png")))
            .unwrap();
    }
    let questions = write(
        &d,
        "questions.json",
        r#"[["what color is it?", "red", 0], ["what color is it?", "blue", 1],
            ["is it blue?", "no", 0], ["is it blue?", "yes", 1]]"#,
    );
    let out = d.join("llava");
    tasklm(&[
        "train",
        "--task",
        "vqa",
        "--model",
        &fixture("tiny_decoder"),
        "--vision",
        &fixture("tiny_clip_vision"),
        "--data",
        &questions,
        "--out",
        path(&out),
        "--train-lm",
        "--max-steps",
        "150",
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--save-every",
        "0",
    ]);
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["model_type"], "llava");
    let weights =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert!(
        weights.contains_key("vision_tower.pre_layrnorm.weight"),
        "the frozen tower is saved"
    );
    assert!(weights.contains_key("multi_modal_projector.linear_1.weight"));
    assert_eq!(read_json(&out.join("tasklm.json"))["task"], "vqa");

    let eval = |extra: &[&str]| -> Value {
        let mut args = vec!["eval", "--task", "vqa", "--model", path(&out)];
        args.extend(["--data", &questions, "--json"]);
        args.extend_from_slice(extra);
        serde_json::from_str(tasklm(&args).trim()).unwrap()
    };
    let report = eval(&[]);
    let m = &report;
    assert_eq!(m["accuracy"], 1.0, "{report}");
    assert_eq!(m["accuracy_colour"], 1.0, "{report}");
    assert_eq!(m["accuracy_yes_no"], 1.0, "{report}");
    assert_eq!(m["majority_baseline"], 0.25, "{report}");

    // A closed set of answers (label scoring) gives the same answers.
    let answers = write(&d, "answers.txt", "red\nblue\nyes\nno\ncircle\n");
    let preds = d.join("preds.jsonl");
    let report = eval(&["--labels", &answers, "--predictions", path(&preds)]);
    assert_eq!(report["accuracy"], 1.0, "{report}");
    // --predictions: one line per question with its answer, the prediction and its type.
    let lines: Vec<Value> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|l| l["prediction"] == l["answer"] && l["correct"] == true),
        "{lines:?}"
    );
    assert_eq!(lines[0]["type"], "colour", "{lines:?}");
    assert!(lines[0]["score"]
        .as_f64()
        .is_some_and(|p| p > 0.0 && p <= 1.0));
    let bad = write(&d, "one.txt", "red\n");
    let o = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args([
            "eval",
            "--task",
            "vqa",
            "--model",
            path(&out),
            "--data",
            &questions,
        ])
        .args(["--labels", &bad])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("one.txt") && err.contains("at least two"),
        "{err}"
    );

    // chat --image answers the last user turn of a conversation about the image.
    let conv = write(
        &d,
        "conv.json",
        r#"{"messages": [{"role": "user", "content": "what color is it?"}]}"#,
    );
    let red = d.join("images/0.png");
    let v: Value = serde_json::from_str(
        tasklm(&[
            "chat",
            "--model",
            path(&out),
            "--image",
            path(&red),
            "--input",
            &conv,
        ])
        .trim(),
    )
    .unwrap();
    assert_eq!(v["message"]["content"], "red", "{v}");
    // A model that is not a LLaVA is named.
    let o = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args([
            "chat",
            "--model",
            &fixture("tiny_decoder"),
            "--image",
            path(&red),
        ])
        .args(["--input", &conv])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("vision-language model"),
        "{err}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(["predict", "--task", "vqa", "--model", path(&out)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let image = d.join("images/1.png");
    writeln!(
        child.stdin.take().unwrap(),
        "{}",
        serde_json::json!({"image": image, "question": "what color is it?"})
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["answer"], "blue", "{v}");
    let score = v["score"].as_f64().unwrap();
    assert!(score > 0.5 && score <= 1.0, "{v}");
}

#[test]
fn a_fresh_llava_reads_the_tower_layer_and_cls_it_is_told_to_and_trains_turns() {
    let d = scratch("vqa-cli-features");
    std::fs::create_dir_all(d.join("images")).unwrap();
    image::RgbImage::from_pixel(32, 32, image::Rgb([220u8, 20, 20]))
        .save(d.join("images/0.png"))
        .unwrap();
    let questions = write(
        &d,
        "questions.json",
        r#"[["what color is it?", "red", 0], ["is it red?", "yes", 0]]"#,
    );
    let train = |name: &str, extra: &[&str]| -> (Value, Value) {
        let out = d.join(name);
        let (decoder, vision) = (fixture("tiny_decoder"), fixture("tiny_clip_vision"));
        let mut args = vec!["train", "--task", "vqa", "--model", &decoder];
        args.extend([
            "--vision",
            &vision,
            "--data",
            &questions,
            "--out",
            path(&out),
        ]);
        args.extend(["--max-steps", "1", "--batch-size", "2", "--save-every", "0"]);
        args.extend(["--json"]);
        args.extend_from_slice(extra);
        let report: Value = serde_json::from_str(tasklm(&args).trim()).unwrap();
        (read_json(&out.join("config.json")), report)
    };
    let (plain, report) = train("default", &[]);
    assert_eq!(plain["vision_feature_layer"], -2);
    assert_eq!(plain["vision_feature_select_strategy"], "default");
    assert_eq!(report["questions"], 2, "{report}");
    let (full, _) = train(
        "last-with-cls",
        &[
            "--vision-feature-layer",
            "-1",
            "--vision-feature-select",
            "full",
            "--questions-per-image",
            "2",
        ],
    );
    let saved = read_json(&d.join("last-with-cls/tasklm.json"));
    assert_eq!(saved["questions_per_image"], 2, "{saved}");
    assert_eq!(full["vision_feature_layer"], -1);
    assert_eq!(full["vision_feature_select_strategy"], "full");
    let tokens = |c: &Value| c["image_seq_length"].as_u64().unwrap();
    assert_eq!(
        tokens(&full),
        tokens(&plain) + 1,
        "[CLS] kept: one more token"
    );
}
