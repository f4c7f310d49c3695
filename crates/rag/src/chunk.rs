//! Token chunking with overlap. A document's text is tokenized by the embedding model's own
//! tokenizer (no special tokens); windows of `tokens` tokens start every `tokens - overlap`
//! tokens, and each chunk keeps its document id and its character span (start inclusive, end
//! exclusive, in characters as Python counts them) in the document.

use crate::docs::Document;
use crate::{RagError, Result};
use serde::{Deserialize, Serialize};
use tasklm_text::TextTokenizer;

/// Default tokens per chunk (capped at the model's input length less `[CLS]` and `[SEP]`).
pub const DEFAULT_CHUNK_TOKENS: usize = 256;
/// Default tokens shared by consecutive chunks of a document.
pub const DEFAULT_OVERLAP: usize = 32;

/// How documents are cut, in the embedding model's tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    pub tokens: usize,
    pub overlap: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            tokens: DEFAULT_CHUNK_TOKENS,
            overlap: DEFAULT_OVERLAP,
        }
    }
}

impl ChunkConfig {
    /// This configuration with `tokens` cut to `max_tokens` (and the overlap below it).
    pub fn capped(self, max_tokens: usize) -> Result<Self> {
        let tokens = self.tokens.min(max_tokens);
        if tokens == 0 || self.overlap >= tokens {
            return Err(RagError::Invalid(format!(
                "chunks of {tokens} tokens with an overlap of {}: the overlap must be below the chunk size (at most {max_tokens} tokens for this model)",
                self.overlap
            )));
        }
        Ok(Self {
            tokens,
            overlap: self.overlap,
        })
    }
}

/// One chunk of a document: what the index stores for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub doc_id: String,
    pub title: String,
    /// Character span in the document.
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// The chunks of a document (or segment) with the token ids each is embedded from.
pub fn chunk_document(
    tokenizer: &TextTokenizer,
    doc: &Document,
    cfg: ChunkConfig,
) -> Result<Vec<(Chunk, Vec<u32>)>> {
    let (ids, offsets) = tokenizer.encode_with_offsets(&doc.text, false)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Byte index of each character, and one past the end, to slice spans out of the text.
    let bytes: Vec<usize> = doc
        .text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(doc.text.len()))
        .collect();
    let n_chars = bytes.len() - 1;
    let step = cfg.tokens - cfg.overlap;
    let mut out = Vec::new();
    let mut first = 0;
    loop {
        let last = (first + cfg.tokens).min(ids.len());
        let start = offsets[first].0.min(n_chars);
        let end = offsets[first..last]
            .iter()
            .map(|o| o.1)
            .max()
            .unwrap_or(start)
            .clamp(start, n_chars);
        out.push((
            Chunk {
                doc_id: doc.id.clone(),
                title: doc.title.clone(),
                start: doc.offset + start,
                end: doc.offset + end,
                text: doc.text[bytes[start]..bytes[end]].to_string(),
            },
            ids[first..last].to_vec(),
        ));
        if last == ids.len() {
            return Ok(out);
        }
        first += step;
    }
}
