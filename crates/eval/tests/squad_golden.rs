//! SQuAD v1.1 EM/F1 against the official script's functions on 300 real questions with varied
//! predictions (`scripts/golden/squad_metric.py`).

use anyhow::{Context, Result};
use serde_json::Value;
use tasklm_eval::squad::{best_over, exact_match, f1, squad_scores};

#[test]
fn squad_scores_match_the_official_script() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/squad_golden.json"
    );
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let rows = g["rows"].as_array().context("rows")?;
    let (mut preds, mut refs) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        let p = r["prediction"].as_str().context("prediction")?.to_string();
        let t: Vec<String> = r["references"]
            .as_array()
            .context("references")?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let (em, f) = (best_over(exact_match, &p, &t), best_over(f1, &p, &t));
        assert_eq!(
            em,
            r["em"].as_f64().context("em")?,
            "row {i}: EM of {p:?} vs {t:?}"
        );
        let want = r["f1"].as_f64().context("f1")?;
        assert!(
            (f - want).abs() < 1e-12,
            "row {i}: F1 {f} vs {want} for {p:?} vs {t:?}"
        );
        preds.push(p);
        refs.push(t);
    }
    let (em, f) = squad_scores(&preds, &refs);
    assert!((em - g["exact_match"].as_f64().context("exact_match")?).abs() < 1e-9);
    assert!((f - g["f1"].as_f64().context("f1")?).abs() < 1e-9);
    Ok(())
}
