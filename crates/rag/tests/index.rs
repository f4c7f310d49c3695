//! The index end to end on the tiny encoder fixture: reading the three document formats,
//! chunk spans, BM25 / dense / hybrid search, add, delete, HNSW past its threshold, and the
//! errors (empty documents by file and line, a missing index, another embedding model).

use std::path::{Path, PathBuf};
use tasklm_rag::{
    add, build, delete, BuildOptions, ChunkConfig, EmbeddingModel, Fusion, Index, Mode, RagError,
};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny_encoder")
}

fn model() -> EmbeddingModel {
    EmbeddingModel::load(tiny().to_str().unwrap(), false).unwrap()
}

fn small_chunks() -> BuildOptions {
    BuildOptions {
        chunking: ChunkConfig {
            tokens: 24,
            overlap: 6,
        },
        ..BuildOptions::default()
    }
}

const LONG: &str = "The river flows north through the old city, past the university and the \
    cathedral, where students gather on the bridges in the summer evenings to watch the boats. \
    In winter the water freezes and people skate from one bank to the other.";

fn write_docs(dir: &Path) -> PathBuf {
    let p = dir.join("docs.jsonl");
    let lines = [
        serde_json::json!({"id": "zebra", "title": "Animals", "text": "A zebra has black and white stripes."}),
        serde_json::json!({"id": "piano", "title": "Music", "text": "The piano has eighty-eight keys."}),
        serde_json::json!({"id": "river", "title": "Geography", "text": LONG}),
        serde_json::json!({"id": 7, "text": "Seven is a prime number."}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&p, text.join("\n") + "\n").unwrap();
    p
}

/// The characters `[start, end)` of `text`.
fn span(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

#[test]
fn build_search_add_delete() {
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let root = dir.path().join("index");
    let m = model();
    let manifest = build(&m, &docs, &root, small_chunks()).unwrap();
    assert_eq!(manifest.documents, 4);
    assert_eq!(manifest.version, 1);
    assert!(!manifest.hnsw);
    let index = Index::open(&root).unwrap();
    assert_eq!(index.chunks.len(), manifest.chunks);
    // The long document is cut into overlapping chunks whose spans give back their text.
    let river: Vec<_> = index
        .chunks
        .iter()
        .filter(|c| c.doc_id == "river")
        .collect();
    assert!(river.len() >= 3, "{} chunks", river.len());
    for c in &river {
        assert_eq!(span(LONG, c.start, c.end), c.text);
    }
    for w in river.windows(2) {
        assert!(
            w[1].start < w[0].end,
            "chunks overlap: {:?} {:?}",
            w[0],
            w[1]
        );
    }
    assert_eq!(river[0].start, 0);
    assert_eq!(river.last().unwrap().end, LONG.chars().count());
    assert!(index
        .chunks
        .iter()
        .any(|c| c.doc_id == "7" && c.title.is_empty()));

    let hits = index.search("zebra stripes", None, 2, Mode::Bm25).unwrap();
    assert_eq!(hits[0].doc_id, "zebra");
    assert_eq!(hits[0].title, "Animals");
    // A document's own text is its nearest neighbour (cosine 1).
    let q = "The piano has eighty-eight keys.";
    let v = m.embedder.embed_texts(&[q], 8).unwrap().remove(0);
    let dense = index.search(q, Some(&v), 3, Mode::Dense).unwrap();
    assert_eq!(dense[0].doc_id, "piano");
    assert!((dense[0].score - 1.0).abs() < 1e-4, "{}", dense[0].score);
    assert!(dense[0].score >= dense[1].score);
    // First in both rankings: the top of both normalised scores, or 2 / (60 + 1) by RRF.
    let hybrid = index.search(q, Some(&v), 3, Mode::Hybrid).unwrap();
    assert_eq!(hybrid[0].doc_id, "piano");
    assert!((hybrid[0].score - 1.0).abs() < 1e-6, "{}", hybrid[0].score);
    assert!(hybrid[1].score < 1.0);
    let rrf = index
        .search_with(q, Some(&v), 3, Mode::Hybrid, Fusion::Rrf)
        .unwrap();
    assert_eq!(rrf[0].doc_id, "piano");
    assert!((rrf[0].score - 2.0 / 61.0).abs() < 1e-6, "{}", rrf[0].score);
    assert!(index.search(q, None, 3, Mode::Dense).is_err());

    // Add: new documents are searchable, an id already indexed is refused.
    let more = dir.path().join("more.jsonl");
    std::fs::write(
        &more,
        r#"{"id": "violin", "text": "A violin has four strings."}"#,
    )
    .unwrap();
    let after = add(&root, &m, &more, 8).unwrap();
    assert_eq!((after.version, after.documents), (2, 5));
    let index = Index::open(&root).unwrap();
    assert_eq!(
        index.search("violin strings", None, 1, Mode::Bm25).unwrap()[0].doc_id,
        "violin"
    );
    let e = add(&root, &m, &more, 8).unwrap_err().to_string();
    assert!(
        e.contains("more.jsonl:1") && e.contains("already in the index"),
        "{e}"
    );

    // Delete: gone from every mode; an unknown id changes nothing.
    let after = delete(&root, &["zebra".to_string()]).unwrap();
    assert_eq!((after.version, after.documents), (3, 4));
    let index = Index::open(&root).unwrap();
    assert!(index.chunks.iter().all(|c| c.doc_id != "zebra"));
    let e = delete(&root, &["nope".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    assert_eq!(Index::open(&root).unwrap().manifest.version, 3);
    // Older versions are removed once the new one is current.
    let versions = std::fs::read_dir(&root).unwrap().count();
    assert_eq!(versions, 2, "CURRENT and one version");
    let stats = index.stats();
    assert_eq!(stats["documents"], 4);
    assert!(stats["disk_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn another_model_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let root = dir.path().join("index");
    build(&model(), &docs, &root, small_chunks()).unwrap();
    let other = dir.path().join("other_encoder");
    std::fs::create_dir(&other).unwrap();
    for f in std::fs::read_dir(tiny()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), other.join(f.file_name())).unwrap();
    }
    let manifest = tasklm_rag::read_manifest(&root).unwrap();
    let err = EmbeddingModel::for_index(&root, &manifest, Some(other.to_str().unwrap()), false)
        .err()
        .expect("another model must be refused");
    assert!(matches!(err, RagError::WrongModel { .. }));
    let e = err.to_string();
    assert!(
        e.contains("other_encoder") && e.contains("tiny_encoder"),
        "{e}"
    );
    // Without a model the index's own is used.
    let own = EmbeddingModel::for_index(&root, &manifest, None, false).unwrap();
    assert!(own.spec.contains("tiny_encoder"));
}

#[test]
fn bad_documents_and_missing_index_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let docs = dir.path().join("bad.jsonl");
    std::fs::write(
        &docs,
        "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \"  \"}\n",
    )
    .unwrap();
    let root = dir.path().join("index");
    let e = build(&m, &docs, &root, small_chunks())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.jsonl:2") && e.contains("empty"), "{e}");
    assert!(
        tasklm_rag::read_manifest(&root).is_err(),
        "nothing was committed"
    );
    std::fs::write(
        &docs,
        "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n",
    )
    .unwrap();
    let e = build(&m, &docs, &root, small_chunks())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.jsonl:2") && e.contains("twice"), "{e}");
    std::fs::write(&docs, "{\"id\": \"a\", \"body\": \"x\"}\n").unwrap();
    let e = build(&m, &docs, &root, small_chunks())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.jsonl:1") && e.contains("\"text\""), "{e}");
    let e = Index::open(&dir.path().join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nowhere") && e.contains("no index"), "{e}");
    // A folder that is not an index is not written into.
    let e = build(&m, &docs, dir.path(), small_chunks())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an index"), "{e}");
    let folder = dir.path().join("texts");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("empty.md"), "\n \n").unwrap();
    let e = build(&m, &folder, &root, small_chunks())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("empty.md") && e.contains("empty document"),
        "{e}"
    );
}

#[test]
fn folders_squad_json_and_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let folder = dir.path().join("texts");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("a.txt"), "Alpha document about apples.\n").unwrap();
    std::fs::write(folder.join("sub/b.md"), "# Beta\n\nBananas are yellow.\n").unwrap();
    std::fs::write(folder.join("ignored.csv"), "x,y\n").unwrap();
    // Larger than one segment: spans still count from the start of the file.
    let line = "one more line of the large file, with words to index\n";
    let big: String = line.repeat(tasklm_rag::docs::SEGMENT_CHARS / line.len() + 40);
    std::fs::write(folder.join("big.txt"), &big).unwrap();
    let root = dir.path().join("index");
    let opts = BuildOptions {
        chunking: ChunkConfig {
            tokens: 120,
            overlap: 20,
        },
        ..BuildOptions::default()
    };
    let manifest = build(&m, &folder, &root, opts).unwrap();
    assert_eq!(manifest.documents, 3);
    let index = Index::open(&root).unwrap();
    let mut ids: Vec<&str> = index.chunks.iter().map(|c| c.doc_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids, ["a.txt", "big.txt", "sub/b.md"]);
    let big_chunks: Vec<_> = index
        .chunks
        .iter()
        .filter(|c| c.doc_id == "big.txt")
        .collect();
    assert!(big_chunks
        .iter()
        .any(|c| c.start > tasklm_rag::docs::SEGMENT_CHARS));
    for c in big_chunks {
        assert_eq!(span(&big, c.start, c.end), c.text);
    }

    let squad = dir.path().join("squad.json");
    let data = serde_json::json!({"data": [
        {"title": "Apple", "paragraphs": [{"context": "Apples grow on trees.", "qas": []},
                                          {"context": "Cider is made from apples.", "qas": []}]},
        {"title": "Pear", "paragraphs": [{"context": "Pears are sweet.", "qas": []}]}]});
    std::fs::write(&squad, data.to_string()).unwrap();
    let root = dir.path().join("squad_index");
    let manifest = build(&m, &squad, &root, small_chunks()).unwrap();
    assert_eq!(manifest.documents, 3);
    let index = Index::open(&root).unwrap();
    let ids: Vec<&str> = index.chunks.iter().map(|c| c.doc_id.as_str()).collect();
    assert_eq!(ids, ["Apple/0", "Apple/1", "Pear/0"]);
    assert_eq!(
        index.search("cider", None, 1, Mode::Bm25).unwrap()[0].doc_id,
        "Apple/1"
    );
}

#[test]
fn hnsw_past_its_threshold_is_written_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let root = dir.path().join("index");
    let m = model();
    let opts = BuildOptions {
        hnsw_min_chunks: 1,
        ..small_chunks()
    };
    let manifest = build(&m, &docs, &root, opts).unwrap();
    assert!(manifest.hnsw);
    let index = Index::open(&root).unwrap();
    assert!(index.hnsw.is_some());
    let q = "A zebra has black and white stripes.";
    let v = m.embedder.embed_texts(&[q], 8).unwrap().remove(0);
    let hits = index.search(q, Some(&v), 2, Mode::Dense).unwrap();
    assert_eq!(hits[0].doc_id, "zebra");
    // The graph is rebuilt with each version.
    let after = delete(&root, &["piano".to_string()]).unwrap();
    assert!(after.hnsw);
    assert_eq!(
        Index::open(&root).unwrap().hnsw.unwrap().len(),
        after.chunks
    );
}
