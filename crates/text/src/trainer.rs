//! Training a tokenizer from text (`tasklm tokenizer train`): BPE or Unigram through the
//! `tokenizers` crate's trainers, with the special tokens a seq2seq model needs, written as a
//! `tokenizer.json` that transformers' `PreTrainedTokenizerFast` loads and encodes identically.
//!
//! - **Unigram** (the default, as T5 and Marian's SentencePiece vocabularies): NFKC, words split
//!   on whitespace with `▁` marking their start (Metaspace), special tokens `<pad>` 0, `</s>` 1,
//!   `<unk>` 2 (T5's ids; pad doubles as the decoder start, as in T5 and Marian).
//! - **BPE** (as BART and GPT-2): byte-level, so nothing is ever unknown; special tokens `<s>` 0,
//!   `<pad>` 1, `</s>` 2, `<unk>` 3 (BART's ids).
//!
//! Both append `</s>` to every encoded sequence (the post-processor), as seq2seq sources and
//! targets end with EOS.

use crate::{Result, TextError};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BpeTrainer;
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, Tokenizer,
};

/// Which subword model to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubwordKind {
    Unigram,
    Bpe,
}

impl std::str::FromStr for SubwordKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "unigram" => Ok(Self::Unigram),
            "bpe" => Ok(Self::Bpe),
            other => Err(format!("`{other}`: expected `unigram` or `bpe`")),
        }
    }
}

impl SubwordKind {
    /// The special tokens, in id order.
    pub fn special_tokens(self) -> &'static [&'static str] {
        match self {
            Self::Unigram => &["<pad>", "</s>", "<unk>"],
            Self::Bpe => &["<s>", "<pad>", "</s>", "<unk>"],
        }
    }
}

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainerOptions {
    pub kind: SubwordKind,
    /// The vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// BPE: merge pairs seen at least this often.
    pub min_frequency: u64,
    /// Longest piece (Unigram) or token (BPE), in characters.
    pub max_piece_length: usize,
}

impl Default for TrainerOptions {
    fn default() -> Self {
        Self {
            kind: SubwordKind::Unigram,
            vocab_size: 8000,
            min_frequency: 2,
            max_piece_length: 16,
        }
    }
}

/// The lines of `path` (plain UTF-8 text, or gzip when it ends in `.gz`), streamed.
fn text_lines(path: &Path) -> Result<Box<dyn Iterator<Item = Result<String>> + Send>> {
    let file = std::fs::File::open(path).map_err(|e| TextError::file(path, e))?;
    let reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let owned: PathBuf = path.into();
    Ok(Box::new(BufReader::new(reader).lines().enumerate().map(
        move |(i, line)| line.map_err(|e| TextError::file(&owned, format!("line {}: {e}", i + 1))),
    )))
}

/// Checks that every file opens, is UTF-8 text and has a non-empty line (naming the file and
/// line otherwise); the lines are streamed again for training, never held whole.
fn check_corpus(files: &[PathBuf]) -> Result<usize> {
    let mut total = 0;
    for f in files {
        let mut lines = 0;
        for line in text_lines(f)? {
            if !line?.trim().is_empty() {
                lines += 1;
            }
        }
        if lines == 0 {
            return Err(TextError::file(f, "no text: every line is empty"));
        }
        total += lines;
    }
    Ok(total)
}

/// The non-empty lines of every file, in order (already checked by [`check_corpus`]).
fn corpus_lines(files: &[PathBuf]) -> Result<impl Iterator<Item = String> + Send> {
    let mut all = Vec::new();
    for f in files {
        all.push(text_lines(f)?);
    }
    let lines = all
        .into_iter()
        .flatten()
        .filter_map(|l| l.ok())
        .filter(|l| !l.trim().is_empty());
    Ok(lines)
}

/// Unigram training over word counts in sorted order. (The `tokenizers` crate counts words
/// in a randomly seeded hash map and trains in its order, so two runs on the same text gave
/// different scores and ids.)
fn train_unigram(
    tokenizer: &mut Tokenizer,
    trainer: &UnigramTrainer,
    files: &[PathBuf],
) -> Result<()> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for line in corpus_lines(files)? {
        let mut normalized = NormalizedString::from(line.as_str());
        if let Some(n) = tokenizer.get_normalizer() {
            n.normalize(&mut normalized).map_err(tok_err)?;
        }
        let mut pre = PreTokenizedString::from(normalized);
        if let Some(p) = tokenizer.get_pre_tokenizer() {
            p.pre_tokenize(&mut pre).map_err(tok_err)?;
        }
        for (word, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *counts.entry(word.to_string()).or_default() += 1;
        }
    }
    let mut model = Unigram::default();
    let specials = trainer
        .do_train(counts.into_iter().collect(), &mut model)
        .map_err(tok_err)?;
    tokenizer.with_model(canonical_char_scores(&model, specials.len())?);
    tokenizer.add_special_tokens(specials).map_err(tok_err)?;
    Ok(())
}

/// The trainer appends the characters its pieces do not cover in a hash set's random order,
/// scoring the k-th of them `min + 0.0001 * k` (`min`: the lowest piece score), and orders
/// equal scores as they came. This gives the k-th of those characters in code-point order that
/// score and breaks ties by the piece's text, so the same text always gives the same vocabulary.
fn canonical_char_scores(model: &Unigram, specials: usize) -> Result<Unigram> {
    const STEP: f64 = 0.0001;
    let mut pieces: Vec<(String, f64)> = model.iter().cloned().collect();
    let specials = specials.min(pieces.len());
    let rest = &mut pieces[specials..];
    let min = rest.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let len = rest.len() as f64;
    let appended = |p: &(String, f64)| {
        let k = (p.1 - min) / STEP;
        p.0.chars().count() == 1 && (k - k.round()).abs() < 1e-4 && k.round() < len
    };
    let mut chars: Vec<usize> = (0..rest.len()).filter(|&i| appended(&rest[i])).collect();
    let mut names: Vec<String> = chars.iter().map(|&i| rest[i].0.clone()).collect();
    names.sort();
    chars.sort_by(|&a, &b| rest[b].1.total_cmp(&rest[a].1));
    let n = names.len();
    for (k, (i, name)) in chars.into_iter().zip(names).enumerate() {
        rest[i] = (name, min + STEP * (n - 1 - k) as f64);
    }
    rest.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let unk = pieces.iter().position(|p| p.0 == "<unk>");
    Unigram::from(pieces, unk, false).map_err(tok_err)
}

fn added(tokens: &[&str]) -> Vec<AddedToken> {
    tokens
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect()
}

fn tok_err(e: impl std::fmt::Display) -> TextError {
    TextError::Tokenizer(e.to_string())
}

/// Trains a tokenizer on the lines of `files` (text or `.gz`, one sentence or paragraph per
/// line). Returns the tokenizer and the number of lines it was trained on.
pub fn train_tokenizer(files: &[PathBuf], opts: &TrainerOptions) -> Result<(Tokenizer, usize)> {
    if files.is_empty() {
        return Err(TextError::Tokenizer("no training files given".into()));
    }
    let specials = opts.kind.special_tokens();
    if opts.vocab_size <= specials.len() {
        return Err(TextError::Tokenizer(format!(
            "vocab size {} leaves no room beside the {} special tokens",
            opts.vocab_size,
            specials.len()
        )));
    }
    let lines = check_corpus(files)?;
    let (mut tokenizer, trainer): (Tokenizer, TrainerWrapper) = match opts.kind {
        SubwordKind::Unigram => {
            let mut t = Tokenizer::new(Unigram::default());
            t.with_normalizer(Some(NFKC)).map_err(tok_err)?;
            let meta = Metaspace::new('▁', PrependScheme::Always, true);
            t.with_pre_tokenizer(Some(meta.clone()));
            t.with_decoder(Some(meta));
            let trainer = UnigramTrainer::builder()
                .show_progress(false)
                .vocab_size(opts.vocab_size as u32)
                .special_tokens(added(specials))
                .unk_token(Some("<unk>".into()))
                .max_piece_length(opts.max_piece_length)
                .build()
                .map_err(tok_err)?;
            (t, trainer.into())
        }
        SubwordKind::Bpe => {
            let mut t = Tokenizer::new(tokenizers::models::bpe::BPE::default());
            t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            t.with_decoder(Some(ByteLevel::default()));
            let trainer = BpeTrainer::builder()
                .show_progress(false)
                .vocab_size(opts.vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(added(specials))
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .max_token_length(Some(opts.max_piece_length))
                .build();
            (t, trainer.into())
        }
    };
    match trainer {
        TrainerWrapper::UnigramTrainer(t) => train_unigram(&mut tokenizer, &t, files)?,
        mut other => {
            tokenizer
                .train(&mut other, corpus_lines(files)?)
                .map_err(tok_err)?;
        }
    }
    let eos = tokenizer
        .token_to_id("</s>")
        .ok_or_else(|| tok_err("the trained vocabulary lost `</s>`"))?;
    let post = TemplateProcessing::builder()
        .try_single("$A </s>")
        .and_then(|b| b.try_pair("$A </s> $B </s>"))
        .map_err(tok_err)?
        .special_tokens(vec![("</s>", eos)])
        .build()
        .map_err(tok_err)?;
    tokenizer.with_post_processor(Some(post));
    Ok((tokenizer, lines))
}

/// Writes `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` into `dir`
/// (created if missing), so `AutoTokenizer.from_pretrained(dir)` loads it as a fast tokenizer.
pub fn save_trained(tokenizer: &Tokenizer, kind: SubwordKind, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TextError::file(dir, e))?;
    let json = dir.join("tokenizer.json");
    tokenizer
        .save(&json, true)
        .map_err(|e| TextError::file(&json, e))?;
    let mut map = serde_json::Map::new();
    map.insert("eos_token".into(), "</s>".into());
    map.insert("pad_token".into(), "<pad>".into());
    map.insert("unk_token".into(), "<unk>".into());
    if kind == SubwordKind::Bpe {
        map.insert("bos_token".into(), "<s>".into());
    }
    let mut config = map.clone();
    config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
    config.insert("clean_up_tokenization_spaces".into(), false.into());
    for (name, value) in [
        ("special_tokens_map.json", map),
        ("tokenizer_config.json", config),
    ] {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&value).map_err(|e| TextError::file(&path, e))?;
        std::fs::write(&path, text + "\n").map_err(|e| TextError::file(&path, e))?;
    }
    Ok(())
}
