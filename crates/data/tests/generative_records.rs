//! Generative records: translation pairs from line-aligned gzip files, JSONL fields with
//! errors naming file and line, SQuAD JSON as generative QA with every answer a reference.

use anyhow::Result;
use tasklm_data::{read_generative, read_translation};
use tasklm_hub::testing::shared_data;

#[test]
fn jsonl_records_and_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("s.jsonl");
    std::fs::write(
        &p,
        "{\"dialogue\": \"A: hi\", \"summary\": \"They greet.\", \"id\": \"x1\"}\n{\"dialogue\": \"B\"}\n",
    )?;
    let e = read_generative("summarize", &p)
        .expect_err("line 2 lacks a summary")
        .to_string();
    assert!(e.contains("s.jsonl:2") && e.contains("summary"), "{e}");
    std::fs::write(
        &p,
        "{\"question\": \"2+2?\", \"answer\": [\"4\", \"four\"]}\n",
    )?;
    let r = read_generative("genqa", &p)?;
    assert_eq!(r[0].references, ["4", "four"]);
    assert_eq!(r[0].id, "1", "no id: the line number");
    let t = dir.path().join("pairs");
    std::fs::write(dir.path().join("pairs.en"), "a\nb\n")?;
    std::fs::write(dir.path().join("pairs.de"), "x\n")?;
    let e = read_translation(&t, "en", "de")
        .expect_err("1 vs 2 lines")
        .to_string();
    assert!(e.contains("pairs.de") && e.contains("1 lines"), "{e}");
    Ok(())
}

#[test]
fn shared_data_reads() -> Result<()> {
    let Some(d) = shared_data()? else {
        return Ok(());
    };
    let pairs = read_translation(&d.join("multi30k/val"), "en", "de")?;
    assert_eq!(pairs.len(), 1014);
    assert!(!pairs[0].field("source").is_empty() && !pairs[0].target.is_empty());
    let qa = read_generative("genqa", &d.join("squad/train.json"))?;
    assert_eq!(qa.len(), 8582);
    assert!(qa.iter().any(|r| r.references.len() > 1));
    let g = read_generative("reasoning", &d.join("gsm8k/train.jsonl"))?;
    assert!(g.iter().all(|r| tasklm_eval_free_final(&r.target)));
    Ok(())
}

/// Every GSM8K answer ends with `#### N`.
fn tasklm_eval_free_final(answer: &str) -> bool {
    answer
        .rsplit_once("####")
        .is_some_and(|(_, n)| !n.trim().is_empty())
}

#[test]
fn summaries_with_several_references() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("test.jsonl");
    std::fs::write(
        &p,
        concat!(
            "{\"fname\": \"test_0_1\", \"dialogue\": \"A: hi\", \"summary1\": \"One.\", \"summary2\": \"Two.\", \"summary3\": \"Three.\"}\n",
            "{\"document\": \"D\", \"summaries\": [\"S1\", \"S2\"]}\n",
            "{\"document\": \"D\", \"summary\": \"S\", \"summary1\": \"S'\"}\n",
        ),
    )?;
    let r = read_generative("summarize", &p)?;
    assert_eq!(r[0].id, "test_0_1", "DialogSum's fname is the id");
    assert_eq!(r[0].references, ["One.", "Two.", "Three."]);
    assert_eq!(
        r[0].target, "One.",
        "the first reference is the training target"
    );
    assert_eq!(r[1].references, ["S1", "S2"]);
    assert_eq!(r[2].references, ["S", "S'"]);
    std::fs::write(&p, "{\"document\": \"D\", \"summaries\": []}\n")?;
    let e = read_generative("summarize", &p)
        .expect_err("empty list")
        .to_string();
    assert!(
        e.contains("test.jsonl:1") && e.contains("`summaries`"),
        "{e}"
    );
    std::fs::write(&p, "{\"document\": \"D\", \"summary1\": 3}\n")?;
    let e = read_generative("summarize", &p)
        .expect_err("a number")
        .to_string();
    assert!(e.contains("`summary1`"), "{e}");
    Ok(())
}
