//! The Porter stemmer against nltk on ~4,900 real words, and ROUGE-1/2/L against rouge-score
//! 0.1.2 (stemming on) on 200 dialogsum summaries (`scripts/golden/rouge_fixture.py`).

use anyhow::{Context, Result};
use serde_json::Value;
use tasklm_eval::porter::stem;
use tasklm_eval::rouge_multi;

#[test]
fn stems_and_rouge_match_the_python_packages() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/rouge_golden.json"
    );
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let stems = g["stems"].as_object().context("stems")?;
    let wrong: Vec<String> = stems
        .iter()
        .filter(|(w, s)| Some(stem(w).as_str()) != s.as_str())
        .map(|(w, s)| format!("{w}: {} vs nltk {s}", stem(w)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} stems differ: {:?}",
        wrong.len(),
        stems.len(),
        &wrong[..wrong.len().min(20)]
    );
    for (i, c) in g["cases"].as_array().context("cases")?.iter().enumerate() {
        let pred = c["prediction"].as_str().context("prediction")?;
        let refs: Vec<String> = c["references"]
            .as_array()
            .context("references")?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let s = rouge_multi(&refs, pred);
        for (name, got) in [
            ("rouge1", s.rouge1),
            ("rouge2", s.rouge2),
            ("rougeL", s.rouge_l),
        ] {
            let want: Vec<f64> = c[name]
                .as_array()
                .context("scores")?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            for (k, (a, b)) in [got.precision, got.recall, got.fmeasure]
                .iter()
                .zip(&want)
                .enumerate()
            {
                assert!(
                    (a - b).abs() < 1e-12,
                    "case {i} {name}[{k}]: {a} vs rouge-score {b}"
                );
            }
        }
    }
    Ok(())
}
