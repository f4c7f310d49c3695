//! BLEU, chrF and the 13a tokenizer against sacrebleu 2.4.3 on multi30k German lines with
//! corrupted hypotheses, one and two references (`scripts/golden/sacrebleu_fixture.py`).

use anyhow::{Context, Result};
use serde_json::Value;
use tasklm_eval::{corpus_bleu, corpus_chrf, tokenize_13a};

fn strings(v: &Value) -> Result<Vec<String>> {
    v.as_array()
        .context("a list")?
        .iter()
        .map(|s| s.as_str().map(String::from).context("a string"))
        .collect()
}

#[test]
fn bleu_chrf_and_13a_match_sacrebleu() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/sacrebleu_golden.json"
    );
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let hyps = strings(&g["hypotheses"])?;
    let (r1, r2) = (strings(&g["refs"])?, strings(&g["refs2"])?);
    let all: Vec<String> = hyps.iter().chain(&r1).cloned().collect();
    for (line, want) in all.iter().zip(strings(&g["tokenized"])?) {
        assert_eq!(tokenize_13a(line), want, "13a of {line:?}");
    }
    let single: Vec<Vec<String>> = r1.iter().map(|r| vec![r.clone()]).collect();
    let multi: Vec<Vec<String>> = r1
        .iter()
        .zip(&r2)
        .map(|(a, b)| vec![a.clone(), b.clone()])
        .collect();
    for (name, refs) in [("single", &single), ("multi", &multi)] {
        let want = &g[name];
        let num = |k: &str| want[k].as_f64().with_context(|| format!("{name}.{k}"));
        let b = corpus_bleu(&hyps, refs);
        assert!(
            (b.score - num("bleu")?).abs() < 1e-9,
            "{name}: BLEU {} vs {}",
            b.score,
            num("bleu")?
        );
        assert_eq!(b.sys_len as f64, num("sys_len")?);
        assert_eq!(b.ref_len as f64, num("ref_len")?);
        assert!((b.brevity_penalty - num("bp")?).abs() < 1e-12);
        for (i, p) in b.precisions.iter().enumerate() {
            let w = want["precisions"][i].as_f64().context("precision")?;
            assert!((p - w).abs() < 1e-9, "{name}: precision {i}: {p} vs {w}");
        }
        assert_eq!(
            b.signature,
            want["bleu_signature"].as_str().context("signature")?
        );
        let (c, sig) = corpus_chrf(&hyps, refs);
        assert!(
            (c - num("chrf")?).abs() < 1e-9,
            "{name}: chrF {c} vs {}",
            num("chrf")?
        );
        assert_eq!(sig, want["chrf_signature"].as_str().context("signature")?);
    }
    Ok(())
}
