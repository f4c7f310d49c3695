//! Classification and NLI readers on the real files in ../shared/data (skipped when absent) and
//! on small files with errors that name the line.

use anyhow::Result;
use tasklm_data::{read_classify, read_nli, NLI_LABELS};
use tasklm_hub::testing::shared_data;

fn tmp(name: &str, body: &str) -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("tasklm-classify-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    let p = d.join(name);
    std::fs::write(&p, body)?;
    Ok(p)
}

#[test]
fn reads_sst2_tsv_and_snli_jsonl() -> Result<()> {
    let Some(data) = shared_data()? else {
        return Ok(());
    };
    let sst = read_classify(&data.join("sst2/dev.tsv"))?;
    assert_eq!(sst.len(), 6735);
    assert!(sst.iter().all(|r| r.label == "0" || r.label == "1"));
    assert_eq!(sst[0].line, 2);
    let (nli, skipped) = read_nli(&data.join("nli/snli_dev_part1.jsonl"))?;
    assert_eq!(nli.len() + skipped, 5000);
    assert!(nli.iter().all(|r| NLI_LABELS.contains(&r.label.as_str())));
    Ok(())
}

#[test]
fn labels_as_names_or_ints_and_errors_with_lines() -> Result<()> {
    let p = tmp(
        "a.jsonl",
        "{\"text\": \"good\", \"label\": 1}\n{\"text\": \"bad\", \"label\": \"negative\"}\n",
    )?;
    let r = read_classify(&p)?;
    assert_eq!(
        (r[0].label.as_str(), r[1].label.as_str()),
        ("1", "negative")
    );
    let p = tmp(
        "b.jsonl",
        "{\"text\": \"good\", \"label\": 1}\n{\"txt\": \"bad\"}\n",
    )?;
    let e = read_classify(&p).expect_err("bad line").to_string();
    assert!(e.contains("b.jsonl:2") && e.contains("`text`"), "{e}");
    let p = tmp("c.tsv", "words\tclass\nx\t1\n")?;
    let e = read_classify(&p).expect_err("bad header").to_string();
    assert!(e.contains("c.tsv:1") && e.contains("`label`"), "{e}");
    let p = tmp("d.jsonl", "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": 2}\n{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"-\"}\n")?;
    let (r, skipped) = read_nli(&p)?;
    assert_eq!((r[0].label.as_str(), skipped), ("contradiction", 1));
    Ok(())
}
