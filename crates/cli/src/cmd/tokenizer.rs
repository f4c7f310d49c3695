//! `tasklm tokenizer train`: a BPE or Unigram tokenizer from text files, for training a model
//! from scratch (`tasklm train --arch ... --tokenizer DIR`).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tasklm_text::trainer::{save_trained, train_tokenizer, SubwordKind, TrainerOptions};

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a tokenizer on text files (one sentence or paragraph per line; `.gz` is read too)
    /// and write `tokenizer.json` with its `tokenizer_config.json` into --out.
    Train(TrainArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// Text files to learn from; give several for a joint vocabulary (e.g. train.en train.de).
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// Vocabulary size, the special tokens included.
    #[arg(long, default_value_t = 8000)]
    pub vocab_size: usize,
    /// `unigram` (SentencePiece-style, as T5 and Marian; specials <pad> </s> <unk>) or `bpe`
    /// (byte-level, as BART; specials <s> <pad> </s> <unk>).
    #[arg(long, default_value = "unigram")]
    pub kind: SubwordKind,
    /// BPE only: merge pairs seen at least this often.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Longest piece, in characters.
    #[arg(long, default_value_t = 16)]
    pub max_piece_length: usize,
    /// Directory to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(c: TokenizerCommand) -> Result<()> {
    let TokenizerCommand::Train(a) = c;
    let opts = TrainerOptions {
        kind: a.kind,
        vocab_size: a.vocab_size,
        min_frequency: a.min_frequency,
        max_piece_length: a.max_piece_length,
    };
    let started = std::time::Instant::now();
    eprintln!(
        "training a {:?} tokenizer ({} tokens) on {} file(s)...",
        a.kind,
        a.vocab_size,
        a.data.len()
    );
    let (tokenizer, lines) = train_tokenizer(&a.data, &opts)?;
    save_trained(&tokenizer, a.kind, &a.out)
        .with_context(|| format!("writing the tokenizer into {}", a.out.display()))?;
    eprintln!(
        "{} lines -> {} tokens in {:.1} s: {}",
        lines,
        tokenizer.get_vocab_size(true),
        started.elapsed().as_secs_f64(),
        a.out.join("tokenizer.json").display()
    );
    Ok(())
}
