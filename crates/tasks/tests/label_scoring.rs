//! Decoder classification on the real SmolLM2-135M-Instruct: the score is a probability over
//! the allowed labels only, it follows the text's sentiment, calibration and few-shot prompts
//! change it, and evaluation counts accuracy and macro-F1. Skips when the model is not cached.

use anyhow::Result;
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_decoder, LoadedDecoder};
use tasklm_tasks::classify::decoder::{draw_shots, evaluate_examples, LabelScorer, ScoreOptions};
use tasklm_tasks::classify::{LabelExample, LabelPrompt};
use tasklm_tasks::TaskKind;

fn review(text: &str, label: &str) -> LabelExample {
    LabelExample {
        fields: vec![("text".into(), text.into())],
        label: Some(label.into()),
    }
}

fn model() -> Result<Option<LoadedDecoder>> {
    Ok(match catalog_model("smollm2-135m-instruct")? {
        Some(p) => Some(load_decoder(p.to_str().unwrap_or_default(), false)?),
        None => None,
    })
}

#[test]
fn label_probabilities_follow_the_sentiment() -> Result<()> {
    let Some(m) = model()? else {
        return Ok(());
    };
    let prompt = LabelPrompt::defaults(TaskKind::Classify, &["0".into(), "1".into()])?;
    let good = review("a wonderful, moving film with brilliant acting", "1");
    let bad = review("a dull, boring and painfully stupid mess", "0");
    let plain = ScoreOptions::default();
    let s = LabelScorer::new(m.model.as_ref(), &m.tokenizer, &prompt, &[], None, &plain)?;
    let (pg, pb) = (s.probabilities(&good)?, s.probabilities(&bad)?);
    assert!((pg.iter().sum::<f64>() - 1.0).abs() < 1e-9 && pg.len() == 2);
    assert!(
        pg[1] > pb[1],
        "P(positive) {} for the good review vs {} for the bad",
        pg[1],
        pb[1]
    );

    let cal = ScoreOptions {
        calibrate: true,
        ..ScoreOptions::default()
    };
    let c = LabelScorer::new(m.model.as_ref(), &m.tokenizer, &prompt, &[], None, &cal)?;
    assert_ne!(
        c.probabilities(&good)?,
        pg,
        "calibration changes the scores"
    );
    assert_eq!(c.predict(&good)?.0, "1");
    assert_eq!(c.predict(&bad)?.0, "0");

    let pool = vec![
        review("an instant classic", "1"),
        review("a waste of two hours", "0"),
        review("charming and funny", "1"),
    ];
    let (shots, rest) = draw_shots(&pool, 2, 7);
    assert_eq!((shots.len(), rest.len()), (2, 1));
    let f = LabelScorer::new(
        m.model.as_ref(),
        &m.tokenizer,
        &prompt,
        &shots,
        None,
        &plain,
    )?;
    assert_ne!(f.probabilities(&good)?, pg, "the shots are in the prompt");

    let eval = evaluate_examples(&c, &[good, bad], false)?;
    assert_eq!((eval.n, eval.accuracy, eval.macro_f1), (2, 1.0, 1.0));
    Ok(())
}

#[test]
fn a_trained_classifier_keeps_its_label_prompt() -> Result<()> {
    use tasklm_tasks::classify::{LabelPredictor, PromptOverrides};
    if catalog_model("smollm2-135m-instruct")?.is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("train.jsonl");
    let rows = [("sunny", "1"), ("rainy", "0"), ("warm", "1"), ("cold", "0")];
    let body: Vec<String> = rows
        .iter()
        .map(|(t, l)| serde_json::json!({"text": t, "label": l}).to_string())
        .collect();
    std::fs::write(&data, body.join("\n"))?;
    let out = tmp.path().join("out");
    let words = PromptOverrides {
        template: Some("Weather: {text}. Mood:".into()),
        words: Some("sad,happy".into()),
    };
    let job = tasklm_tasks::TrainJob {
        max_seq_len: Some(32),
        args: tasklm_train::TrainArgs {
            max_steps: Some(2),
            batch_size: 4,
            lr: 1e-4,
            ..tasklm_train::TrainArgs::default()
        },
        options: tasklm_tasks::TaskOptions {
            prompt: words,
            ..Default::default()
        },
        ..tasklm_tasks::TrainJob::new(
            TaskKind::Classify,
            "smollm2-135m-instruct",
            data.clone(),
            out.clone(),
        )
    };
    tasklm_tasks::train(&job, &|_| {})?;
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tasklm.json"))?)?;
    assert_eq!(meta["task"], "classify");
    assert_eq!(
        meta["label_prompt"]["words"],
        serde_json::json!([" sad", " happy"])
    );
    // Predicting with the directory uses the saved prompt and labels, no flags needed.
    let p = LabelPredictor::load(
        TaskKind::Classify,
        out.to_str().unwrap_or_default(),
        &PromptOverrides::default(),
        false,
        ScoreOptions::default(),
    )?;
    let a = p.predict(&serde_json::json!({"text": "sunny"}))?;
    assert!(a["label"] == "1" || a["label"] == "0");
    let s = a["score"].as_f64().unwrap_or(0.0);
    assert!((0.5..=1.0).contains(&s), "{a}");
    let err = p
        .predict(&serde_json::json!({"txt": "x"}))
        .expect_err("no text");
    assert!(err.to_string().contains("`text`"), "{err}");
    Ok(())
}
