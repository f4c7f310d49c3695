#!/usr/bin/env python3
"""Golden fixture for reading a Marian (opus-mt) tokenizer from its SentencePiece files: a small
Unigram model trained with the `sentencepiece` package, written as opus-mt ships it
(source.spm, target.spm, vocab.json numbering the pieces differently from the SentencePiece ids:
</s> 0, <unk> 1, the pieces, a language code, <pad> last; tokenizer_config.json), and
transformers' MarianTokenizer ids and decoded text for texts that exercise the normalizer
(NFKC folding, extra spaces), unknown characters and a `>>xx<<` language code.

  tests/fixtures/tiny_marian_spm/{source.spm, vocab.json, tokenizer_config.json, golden.json}
  (target.spm, the same model, is not kept)

Usage: python scripts/golden/marian_spm.py   (needs `pip install sentencepiece`)
"""
import io, json, os, shutil
import sentencepiece as spm
from transformers import MarianTokenizer
from versions import print_versions

v = print_versions("sentencepiece")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny_marian_spm")
os.makedirs(OUT, exist_ok=True)

TEXT = ["a man is riding a bike in the park.", "two dogs are playing with a ball!",
        "ein mann fährt fahrrad im park.", "zwei hunde spielen mit einem ball?",
        "the 3 children sit on 12 benches, eating fish.", "drei kinder sitzen auf bänken."] * 30
model = io.BytesIO()
spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXT), model_writer=model, vocab_size=60,
                               model_type="unigram", character_coverage=1.0,
                               normalization_rule_name="nmt_nfkc")
with open(os.path.join(OUT, "source.spm"), "wb") as f:
    f.write(model.getvalue())
shutil.copy(os.path.join(OUT, "source.spm"), os.path.join(OUT, "target.spm"))
sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
vocab = {"</s>": 0, "<unk>": 1}
for p in pieces:
    if p not in vocab and p != "<s>":
        vocab[p] = len(vocab)
vocab[">>deu<<"] = len(vocab)
vocab["<pad>"] = len(vocab)
json.dump(vocab, open(os.path.join(OUT, "vocab.json"), "w"), ensure_ascii=False, indent=1)
json.dump({"source_lang": "en", "target_lang": "de", "separate_vocabs": False},
          open(os.path.join(OUT, "tokenizer_config.json"), "w"), indent=1)

tok = MarianTokenizer(os.path.join(OUT, "source.spm"), os.path.join(OUT, "target.spm"),
                      os.path.join(OUT, "vocab.json"))
cases = []
for text in ["a man is riding a bike in the park.", "  two   dogs  playing ", "ﬁsh ＡＢＣ park",
             "zwei hunde – 中 € spielen", ">>deu<< a man in the park", "12 benches,3 kids!", ""]:
    ids = tok(text).input_ids
    cases.append({"text": text, "ids": ids,
                  "decoded": tok.decode(ids, skip_special_tokens=True)})
    print(cases[-1])
# target.spm is the same model (a shared vocabulary); tasklm encodes sources only, so the
# fixture keeps one copy.
os.remove(os.path.join(OUT, "target.spm"))
json.dump({"versions": v, "vocab_size": len(vocab), "cases": cases},
          open(os.path.join(OUT, "golden.json"), "w"), ensure_ascii=False, indent=1)
