//! Decoder classification on the real SmolLM2-135M-Instruct: the score is a probability over
//! the allowed labels only, it follows the text's sentiment, calibration and few-shot prompts
//! change it, and evaluation counts accuracy and macro-F1. Skips when the model is not cached.

use anyhow::Result;
use tasklm_hub::testing::catalog_model;
use tasklm_hub::{load_decoder, LoadedDecoder};
use tasklm_tasks::label_prompt::{LabelExample, LabelPrompt};
use tasklm_tasks::label_task::{draw_shots, evaluate_examples, LabelScorer, ScoreOptions};

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
    let prompt = LabelPrompt::defaults("classify", &["0".into(), "1".into()])?;
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
