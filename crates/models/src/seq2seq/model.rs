//! What every encoder-decoder serves ([`EncoderDecoder`]: encode a source once, decode with a
//! cache, teacher-forced training), and [`Seq2SeqModel`], the one type callers hold whatever
//! the architecture (T5, BART, Marian).

use super::bart::Bart;
use super::bart_config::{BartConfig, BartFlavor};
use super::cache::Seq2SeqCache;
use super::t5::T5;
use super::t5_config::T5Config;
use candle_core::{DType, Result, Tensor};

/// An encoder-decoder: the encoder reads the whole source bidirectionally, the decoder
/// generates the target while cross-attending to it.
pub trait EncoderDecoder {
    /// The encoder's output (B, S, d_model) for source ids (B, S) with their key mask
    /// (`key_mask[b][j]`: 0 for padding).
    fn encode(&self, ids: &Tensor, key_mask: &[Vec<u8>], train: bool) -> Result<Tensor>;

    /// A decoder cache for the encoder output `source` (B, S, d_model) and its key mask: each
    /// layer's cross-attention keys and values, computed once.
    fn start_cache(&self, source: &Tensor, key_mask: &[Vec<u8>]) -> Result<Seq2SeqCache>;

    /// Decoder hidden states (B, T, d_model) for decoder ids (B, T) that follow the cache's
    /// positions (all of them, with an empty cache: teacher forcing).
    fn decode(&self, ids: &Tensor, cache: &mut Seq2SeqCache, train: bool) -> Result<Tensor>;

    /// Next-token logits (.., vocab) of decoder hidden states.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor>;

    /// The token the decoder starts from.
    fn decoder_start(&self) -> u32;

    fn pad_id(&self) -> u32;

    /// transformers' `shift_tokens_right`: the decoder input for `labels` (B, T) (-100 where
    /// not scored): the start token, then the labels but the last, -100 replaced by pad.
    fn shift_right(&self, labels: &Tensor) -> Result<Tensor> {
        let (b, t) = labels.dims2()?;
        let pad = self.pad_id() as i64;
        let start = self.decoder_start() as i64;
        let rows = labels.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        let mut out = Vec::with_capacity(b * t);
        for row in rows {
            out.push(start);
            out.extend(
                row[..t.saturating_sub(1)]
                    .iter()
                    .map(|&x| if x == -100 { pad } else { x }),
            );
        }
        Tensor::from_vec(out, (b, t), labels.device())?.to_dtype(DType::U32)
    }

    /// Teacher-forced logits (B, T, vocab) for source ids and labels (B, T; -100 not scored).
    fn forward_train(
        &self,
        source: &Tensor,
        key_mask: &[Vec<u8>],
        labels: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let enc = self.encode(source, key_mask, train)?;
        let mut cache = self.start_cache(&enc, key_mask)?.without_self_cache();
        let dec_ids = self.shift_right(labels)?;
        let hidden = self.decode(&dec_ids, &mut cache, train)?;
        self.logits(&hidden)
    }
}

/// Mean cross-entropy over the scored positions (labels != -100), as transformers' seq2seq
/// losses.
pub fn seq2seq_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (sum, n) = tasklm_nn::ops::masked_cross_entropy(logits, labels)?;
    sum / n.max(1) as f64
}

/// A parsed encoder-decoder config.
#[derive(Clone, Debug, PartialEq)]
pub enum Seq2SeqConfig {
    T5(T5Config),
    /// BART and Marian (see [`BartConfig::flavor`]).
    Bart(BartConfig),
}

impl Seq2SeqConfig {
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::T5(c) => c.vocab_size,
            Self::Bart(c) => c.vocab_size,
        }
    }

    /// The longest source (and decoder input) in tokens: BART and Marian have a table of
    /// `max_position_embeddings` positions; T5's relative positions have no bound.
    pub fn max_positions(&self) -> Option<usize> {
        match self {
            Self::T5(_) => None,
            Self::Bart(c) => Some(c.max_position_embeddings),
        }
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        match self {
            Self::T5(c) => c.eos_token_id,
            Self::Bart(c) => c.eos_token_id,
        }
    }
}

/// A built encoder-decoder, whatever its architecture.
pub enum Seq2SeqModel {
    T5(T5),
    Bart(Bart),
}

impl Seq2SeqModel {
    fn inner(&self) -> &dyn EncoderDecoder {
        match self {
            Self::T5(m) => m,
            Self::Bart(m) => m,
        }
    }

    pub fn config(&self) -> Seq2SeqConfig {
        match self {
            Self::T5(m) => Seq2SeqConfig::T5(m.config().clone()),
            Self::Bart(m) => Seq2SeqConfig::Bart(m.config().clone()),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::T5(m) => m.config().vocab_size,
            Self::Bart(m) => m.config().vocab_size,
        }
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        match self {
            Self::T5(m) => m.config().eos_token_id,
            Self::Bart(m) => m.config().eos_token_id,
        }
    }

    /// The longest source the encoder takes, when its positions bound it.
    pub fn max_source_tokens(&self) -> Option<usize> {
        match self {
            Self::T5(_) => None,
            Self::Bart(m) => Some(m.config().max_position_embeddings),
        }
    }

    /// The longest decoder input (start token included), when its positions bound it.
    pub fn max_target_tokens(&self) -> Option<usize> {
        self.max_source_tokens()
    }

    /// Tokens generation must never produce (Marian: the pad token, which is also its decoder
    /// start; transformers bans it through `bad_words_ids`).
    pub fn never_generated(&self) -> Vec<u32> {
        match self {
            Self::Bart(m) if m.flavor() == BartFlavor::Marian => vec![m.config().pad()],
            _ => Vec::new(),
        }
    }

    /// `T5ForConditionalGeneration`, `BartForConditionalGeneration` or `MarianMTModel`.
    pub fn architecture(&self) -> &'static str {
        match self {
            Self::T5(_) => "T5ForConditionalGeneration",
            Self::Bart(m) => match m.flavor() {
                BartFlavor::Bart => "BartForConditionalGeneration",
                BartFlavor::Marian => "MarianMTModel",
            },
        }
    }
}

impl EncoderDecoder for Seq2SeqModel {
    fn encode(&self, ids: &Tensor, key_mask: &[Vec<u8>], train: bool) -> Result<Tensor> {
        self.inner().encode(ids, key_mask, train)
    }

    fn start_cache(&self, source: &Tensor, key_mask: &[Vec<u8>]) -> Result<Seq2SeqCache> {
        self.inner().start_cache(source, key_mask)
    }

    fn decode(&self, ids: &Tensor, cache: &mut Seq2SeqCache, train: bool) -> Result<Tensor> {
        self.inner().decode(ids, cache, train)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.inner().logits(hidden)
    }

    fn decoder_start(&self) -> u32 {
        self.inner().decoder_start()
    }

    fn pad_id(&self) -> u32 {
        self.inner().pad_id()
    }
}

impl std::fmt::Debug for Seq2SeqModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({:?})", self.architecture(), self.config())
    }
}
