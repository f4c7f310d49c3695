//! BM25 over chunk texts through tantivy: English stemming (`en_stem`: lower case, Porter
//! stemmer), tantivy's BM25 (k1 = 1.2, b = 0.75), queries parsed leniently (any text is a query;
//! terms are OR-ed). Each tantivy document stores its chunk's row in the index.

use crate::{RagError, Result};
use std::path::{Path, PathBuf};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, TantivyDocument};

/// Memory tantivy's writer may buffer before it writes a segment.
const WRITER_BYTES: usize = 50_000_000;

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("en_stem")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = b.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    let row = b.add_u64_field("row", STORED);
    (b.build(), text, row)
}

/// Writes a new BM25 index into an empty folder.
pub struct Bm25Writer {
    path: PathBuf,
    writer: IndexWriter,
    text: Field,
    row: Field,
}

impl Bm25Writer {
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| RagError::file(path, e))?;
        let (schema, text, row) = schema();
        let index = Index::create_in_dir(path, schema).map_err(|e| RagError::bm25(path, e))?;
        let writer = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(|e| RagError::bm25(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            text,
            row,
        })
    }

    pub fn add(&mut self, row: u64, text: &str) -> Result<()> {
        self.writer
            .add_document(doc!(self.text => text, self.row => row))
            .map_err(|e| RagError::bm25(&self.path, e))?;
        Ok(())
    }

    /// Commits (tantivy syncs its files) and waits for merges.
    pub fn finish(mut self) -> Result<()> {
        self.writer
            .commit()
            .map_err(|e| RagError::bm25(&self.path, e))?;
        self.writer
            .wait_merging_threads()
            .map_err(|e| RagError::bm25(&self.path, e))
    }
}

/// A BM25 index opened for search.
pub struct Bm25 {
    path: PathBuf,
    reader: IndexReader,
    parser: QueryParser,
    row: Field,
}

impl Bm25 {
    pub fn open(path: &Path) -> Result<Self> {
        let index = Index::open_in_dir(path).map_err(|e| RagError::bm25(path, e))?;
        let (_, text, row) = schema();
        let reader = index.reader().map_err(|e| RagError::bm25(path, e))?;
        let parser = QueryParser::for_index(&index, vec![text]);
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            parser,
            row,
        })
    }

    /// The `k` best `(row, score)` for `query`, best first.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let (q, _ignored) = self.parser.parse_query_lenient(query);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&q, &TopDocs::with_limit(k).order_by_score())
            .map_err(|e| RagError::bm25(&self.path, e))?;
        top.into_iter()
            .map(|(score, addr)| {
                let d: TantivyDocument = searcher
                    .doc(addr)
                    .map_err(|e| RagError::bm25(&self.path, e))?;
                let row = d
                    .get_first(self.row)
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| RagError::file(&self.path, "a BM25 document without its row"))?;
                Ok((row as u32, score))
            })
            .collect()
    }
}
