//! The PostgreSQL + pgvector store against a real server (`TASKLM_TEST_POSTGRES`, started by
//! `.ci/run` through scripts/ci/postgres.sh): build, search, add, delete; exact dense search
//! equal to the embedded index's top-k, ties included; a failed build keeping the previous
//! contents; another embedding model refused; the pgvector extension missing; an unreachable
//! server named without its password. Without a server the tests skip with a message, and
//! fail under TASKLM_REQUIRE_MODELS=1.

use std::io::Write;
use std::path::{Path, PathBuf};
use tasklm_rag::pg::{self, PgLocation};
use tasklm_rag::{
    BuildOptions, ChunkConfig, EmbeddingModel, Fusion, IndexLocation, Mode, RagError, SearchOptions,
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

/// The test server's URL, or None (printed) to skip; a failure under TASKLM_REQUIRE_MODELS=1.
fn server() -> Option<String> {
    pg::testing::test_server().unwrap()
}

/// `url` with the index name `name` (unique per test and process), emptied first.
fn fresh(url: &str, name: &str) -> PgLocation {
    let sep = if url.contains('?') { '&' } else { '?' };
    let loc = PgLocation::parse(&format!("{url}{sep}index={name}_{}", std::process::id())).unwrap();
    pg::drop_index(&loc).unwrap();
    loc
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

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let loc =
        IndexLocation::parse("postgres://me:s3cret-pw@127.0.0.1:1/db?connect_timeout=5").unwrap();
    let e = loc
        .open()
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(
        e.contains("postgres://me:***@127.0.0.1:1/db") && e.contains("cannot connect"),
        "{e}"
    );
    assert!(!e.contains("s3cret-pw"), "{e}");
}

#[test]
fn build_search_add_delete() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let loc = fresh(&url, "round_trip");
    let store = IndexLocation::Postgres(Box::new(loc.clone()));
    let m = model();
    let manifest = store.build(&m, &docs, small_chunks()).unwrap();
    assert_eq!((manifest.version, manifest.documents), (1, 4));
    assert!(manifest.hnsw);
    // The same chunks as the embedded index of the same documents.
    let embedded_root = dir.path().join("index");
    let embedded = IndexLocation::Dir(embedded_root.clone());
    let em = embedded.build(&m, &docs, small_chunks()).unwrap();
    assert_eq!(em.chunks, manifest.chunks);
    let mut index = store.open().unwrap();
    let stats = index.stats().unwrap();
    assert_eq!(stats["chunks"], manifest.chunks);
    assert_eq!(stats["store"], "postgres");
    assert!(stats["disk_bytes"].as_u64().unwrap() > 0);
    assert!(!stats["index"].as_str().unwrap().contains("tasklm-ci"));
    let opts = SearchOptions::default();

    let hits = index
        .search("zebra stripes", None, 2, Mode::Bm25, &opts)
        .unwrap();
    assert_eq!(hits[0].doc_id, "zebra");
    assert_eq!(hits[0].title, "Animals");
    assert!(hits[0].score > 0.0);
    // Stop words only, or punctuation: no lexemes, no hits, no error.
    for q in ["the of and", "?! 'it''s' & | :*"] {
        let none = index.search(q, None, 3, Mode::Bm25, &opts).unwrap();
        assert!(none.iter().all(|h| h.score > 0.0), "{q}: {none:?}");
    }
    assert!(index
        .search("the", None, 3, Mode::Bm25, &opts)
        .unwrap()
        .is_empty());
    let q = "The piano has eighty-eight keys.";
    let v = m.embedder.embed_texts(&[q], 8).unwrap().remove(0);
    let dense = index.search(q, Some(&v), 3, Mode::Dense, &opts).unwrap();
    assert_eq!(dense[0].doc_id, "piano");
    assert!((dense[0].score - 1.0).abs() < 1e-4, "{}", dense[0].score);
    let mut emb = embedded.open().unwrap();
    let want = emb.search(q, Some(&v), 3, Mode::Dense, &opts).unwrap();
    assert_eq!(dense, want, "exact dense search = the embedded index's");
    let approx = SearchOptions {
        approximate: true,
        ..opts
    };
    let near = index.search(q, Some(&v), 3, Mode::Dense, &approx).unwrap();
    assert_eq!(near[0].doc_id, "piano");
    // First in both rankings: the top of both normalised scores, or 2 / (60 + 1) by RRF.
    let hybrid = index.search(q, Some(&v), 3, Mode::Hybrid, &opts).unwrap();
    assert_eq!(hybrid[0].doc_id, "piano");
    assert!((hybrid[0].score - 1.0).abs() < 1e-6, "{}", hybrid[0].score);
    let rrf = SearchOptions {
        fusion: Fusion::Rrf,
        ..opts
    };
    let hybrid = index.search(q, Some(&v), 3, Mode::Hybrid, &rrf).unwrap();
    assert_eq!(hybrid[0].doc_id, "piano");
    assert!(
        (hybrid[0].score - 2.0 / 61.0).abs() < 1e-6,
        "first in both rankings: {}",
        hybrid[0].score
    );
    // Every chunk's span gives back its text, as in the embedded index.
    let river = index.search(LONG, None, 20, Mode::Bm25, &opts).unwrap();
    let river: Vec<_> = river.iter().filter(|h| h.doc_id == "river").collect();
    assert!(river.len() >= 3, "{} chunks", river.len());
    for h in river {
        let span: String = LONG.chars().skip(h.start).take(h.end - h.start).collect();
        assert_eq!(span, h.text);
    }

    // Add: searchable, rows numbered on; an id already there is refused.
    let more = dir.path().join("more.jsonl");
    std::fs::write(
        &more,
        r#"{"id": "violin", "text": "A violin has four strings."}"#,
    )
    .unwrap();
    let after = store.add(&m, &more, 8).unwrap();
    assert_eq!((after.version, after.documents), (2, 5));
    assert_eq!(after.chunks, manifest.chunks + 1);
    let mut index = store.open().unwrap();
    let hit = &index
        .search("violin strings", None, 1, Mode::Bm25, &opts)
        .unwrap()[0];
    assert_eq!(
        (hit.doc_id.as_str(), hit.chunk),
        ("violin", manifest.chunks)
    );
    let e = store.add(&m, &more, 8).unwrap_err().to_string();
    assert!(
        e.contains("more.jsonl:1") && e.contains("already in the index"),
        "{e}"
    );
    assert_eq!(store.read_manifest().unwrap().version, 2, "nothing written");

    // Delete: gone from every mode; an unknown id changes nothing.
    let after = store.delete(&["zebra".to_string()]).unwrap();
    assert_eq!((after.version, after.documents), (3, 4));
    let mut index = store.open().unwrap();
    let v = m
        .embedder
        .embed_texts(&["zebra stripes"], 8)
        .unwrap()
        .remove(0);
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        let hits = index
            .search("zebra stripes", Some(&v), 10, mode, &opts)
            .unwrap();
        assert!(hits.iter().all(|h| h.doc_id != "zebra"), "{mode:?}");
    }
    let e = store
        .delete(&["piano".to_string(), "nope".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && !e.contains("piano,"), "{e}");
    let m3 = store.read_manifest().unwrap();
    assert_eq!((m3.version, m3.documents), (3, 4));
    assert!(pg::drop_index(&loc).unwrap());
    let e = store.open().err().unwrap().to_string();
    assert!(e.contains("no index there") && e.contains("--store"), "{e}");
}

#[test]
fn exact_dense_top_k_equals_the_embedded_index_ties_included() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("many.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&docs).unwrap());
    let words = [
        "river", "mountain", "piano", "zebra", "city", "winter", "bridge", "boat",
    ];
    for i in 0..240 {
        // Every fourth document repeats an earlier text: equal vectors, equal scores.
        let n = if i % 4 == 3 { i - 3 } else { i };
        let text = format!(
            "{} and {} number {} by the {}",
            words[n % 8],
            words[(n / 8) % 8],
            n % 17,
            words[(n * 3) % 8]
        );
        writeln!(
            f,
            "{}",
            serde_json::json!({"id": format!("d{i}"), "text": text})
        )
        .unwrap();
    }
    drop(f);
    let m = model();
    let store = IndexLocation::Postgres(Box::new(fresh(&url, "exact")));
    store.build(&m, &docs, BuildOptions::default()).unwrap();
    let embedded = IndexLocation::Dir(dir.path().join("index"));
    embedded.build(&m, &docs, BuildOptions::default()).unwrap();
    let (mut p, mut e) = (store.open().unwrap(), embedded.open().unwrap());
    let opts = SearchOptions::default();
    let queries = [
        "river and piano",
        "zebra number 3",
        "winter boat",
        "city by the bridge",
    ];
    let vectors = m.embedder.embed_texts(&queries, 8).unwrap();
    let mut ties = 0;
    for (q, v) in queries.iter().zip(&vectors) {
        for k in [1, 5, 20] {
            let got = p.search(q, Some(v), k, Mode::Dense, &opts).unwrap();
            let want = e.search(q, Some(v), k, Mode::Dense, &opts).unwrap();
            assert_eq!(got, want, "{q} k={k}");
            ties += got.windows(2).filter(|w| w[0].score == w[1].score).count();
        }
    }
    assert!(ties > 0, "the corpus has equal scores, broken by row");
    if let IndexLocation::Postgres(loc) = &store {
        pg::drop_index(loc).unwrap();
    }
}

#[test]
fn a_failed_build_keeps_the_previous_contents() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let loc = fresh(&url, "failed_build");
    let store = IndexLocation::Postgres(Box::new(loc.clone()));
    let m = model();
    let first = store.build(&m, &docs, small_chunks()).unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \"  \"}\n",
    )
    .unwrap();
    let e = store
        .build(&m, &bad, small_chunks())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.jsonl:2") && e.contains("empty"), "{e}");
    assert_eq!(store.read_manifest().unwrap(), first);
    let mut index = store.open().unwrap();
    let hits = index
        .search("zebra", None, 1, Mode::Bm25, &SearchOptions::default())
        .unwrap();
    assert_eq!(hits[0].doc_id, "zebra");
    // A rebuild replaces the contents and numbers the version on.
    let more = dir.path().join("more.jsonl");
    std::fs::write(
        &more,
        r#"{"id": "violin", "text": "A violin has four strings."}"#,
    )
    .unwrap();
    let second = store.build(&m, &more, small_chunks()).unwrap();
    assert_eq!((second.version, second.documents), (2, 1));
    pg::drop_index(&loc).unwrap();
}

#[test]
fn another_model_is_refused_naming_both() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let loc = fresh(&url, "wrong_model");
    let store = IndexLocation::Postgres(Box::new(loc.clone()));
    store.build(&model(), &docs, small_chunks()).unwrap();
    let other = dir.path().join("other_encoder");
    std::fs::create_dir(&other).unwrap();
    for f in std::fs::read_dir(tiny()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), other.join(f.file_name())).unwrap();
    }
    let manifest = store.read_manifest().unwrap();
    let err = store
        .model(&manifest, Some(other.to_str().unwrap()), false)
        .err()
        .expect("another model must be refused");
    assert!(matches!(err, RagError::WrongModel { .. }), "{err}");
    let e = err.to_string();
    assert!(
        e.contains("other_encoder") && e.contains("tiny_encoder") && e.contains(loc.redacted()),
        "{e}"
    );
    // add() checks too, before writing anything.
    let other_model = EmbeddingModel::load(other.to_str().unwrap(), false).unwrap();
    let err = store.add(&other_model, &docs, 8).unwrap_err();
    assert!(matches!(err, RagError::WrongModel { .. }), "{err}");
    let own = store.model(&manifest, None, false).unwrap();
    assert!(own.spec.contains("tiny_encoder"));
    pg::drop_index(&loc).unwrap();
}

#[test]
fn a_database_without_pgvector_says_how_to_get_it() {
    let Some(url) = server() else { return };
    let name = format!("tasklm_noext_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // One statement each: DROP/CREATE DATABASE may not share a (multi-statement) transaction.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let (server_part, _) = base.rsplit_once('/').unwrap();
    let other = if query.is_empty() {
        format!("{server_part}/{name}")
    } else {
        format!("{server_part}/{name}?{query}")
    };
    let store = IndexLocation::parse(&other).unwrap();
    let e = store.open().err().unwrap().to_string();
    assert!(
        e.contains("pgvector")
            && e.contains("not created")
            && e.contains("CREATE EXTENSION vector"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    match store.build(&model(), &docs, small_chunks()) {
        // The test role is not a superuser: it may not create the (untrusted) extension.
        Err(err) => {
            let e = err.to_string();
            assert!(matches!(err, RagError::NoPgvector { .. }), "{e}");
            assert!(e.contains("as a superuser") && e.contains(&name), "{e}");
        }
        // A superuser's build creates it.
        Ok(m) => assert_eq!(m.documents, 4),
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    assert!(pg::PGVECTOR_HELP.contains("make install"));
}
