//! Entity-level NER scores against the `seqeval` package's output on 400 CoNLL-2003
//! validation sentences with corrupted predictions (`scripts/golden/seqeval_fixture.py`).

use anyhow::{Context, Result};
use serde_json::Value;
use tasklm_eval::entity_scores;

fn tags(v: &Value) -> Result<Vec<Vec<String>>> {
    v.as_array()
        .context("a list of sentences")?
        .iter()
        .map(|s| {
            s.as_array()
                .context("a list of tags")?
                .iter()
                .map(|t| t.as_str().map(String::from).context("a tag"))
                .collect()
        })
        .collect()
}

#[test]
fn entity_scores_match_seqeval() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/seqeval_golden.json"
    );
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let s = entity_scores(&tags(&g["truth"])?, &tags(&g["predicted"])?);
    let close = |a: f64, b: &Value, what: &str| -> Result<()> {
        let b = b
            .as_f64()
            .with_context(|| format!("{what} in the fixture"))?;
        assert!((a - b).abs() < 1e-12, "{what}: {a} vs seqeval {b}");
        Ok(())
    };
    close(s.overall.precision, &g["overall"]["precision"], "precision")?;
    close(s.overall.recall, &g["overall"]["recall"], "recall")?;
    close(s.overall.f1, &g["overall"]["f1"], "f1")?;
    let per = g["per_type"].as_object().context("per_type")?;
    assert_eq!(per.len(), 4);
    for (ty, want) in per {
        let got = s
            .per_type
            .get(ty)
            .with_context(|| format!("type {ty} missing"))?;
        close(
            got.precision,
            &want["precision"],
            &format!("{ty} precision"),
        )?;
        close(got.recall, &want["recall"], &format!("{ty} recall"))?;
        close(got.f1, &want["f1"], &format!("{ty} f1"))?;
        assert_eq!(
            Some(got.support as u64),
            want["support"].as_u64(),
            "{ty} support"
        );
    }
    Ok(())
}
