#!/usr/bin/env python3
"""Golden values for `tasklm tokenizer train`: transformers' PreTrainedTokenizerFast must load the
directory tasklm writes and encode identically.

Writes a synthetic bilingual corpus (fixed seed, tests/fixtures/tokenizer_trainer/corpus.txt),
trains a Unigram and a BPE tokenizer on it with the tasklm binary, loads each directory with
`AutoTokenizer.from_pretrained`, and stores the ids transformers gives for probe sentences
(seen words, unseen words, accents, digits, punctuation) in expected.json. The Rust test
(crates/text/tests/tokenizer_trainer.rs) retrains on the same corpus and must give the same ids.

Usage: python scripts/golden/tokenizer_trainer.py path/to/tasklm
"""
import json, os, random, subprocess, sys, tempfile
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from versions import print_versions

v = print_versions("tokenizers")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer_trainer")
os.makedirs(OUT, exist_ok=True)
rng = random.Random(0)

EN = ("a man woman child dog girl boy is are in on the with playing running sitting red blue "
      "street park water ball bike two three people group black white young old wearing shirt").split()
DE = ("ein eine mann frau kind hund mädchen junge ist sind in auf der die das mit spielt läuft "
      "sitzt rot blau straße park wasser ball fahrrad zwei drei leute gruppe schwarz weiß jung "
      "alt trägt hemd größer über").split()


def sentence(words):
    n = rng.randint(4, 12)
    s = " ".join(rng.choice(words) for _ in range(n))
    return s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?", " ..."])


lines = [sentence(EN if i % 2 == 0 else DE) for i in range(600)]
corpus = os.path.join(OUT, "corpus.txt")
with open(corpus, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")

PROBES = [
    "A man is playing with a red ball.",
    "Zwei Mädchen laufen über die Straße!",
    "unseen words: xylophone, Übermensch, naïve café",
    "Numbers 12345 and 3.14, symbols #@% and (brackets)",
    "  leading and   repeated   spaces ",
    "Ein großer Hund trägt ein weißes Hemd ...",
]
SETTINGS = {"unigram": 300, "bpe": 400}
expected = {"versions": v, "probes": PROBES, "tokenizers": {}}
tasklm = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    for kind, size in SETTINGS.items():
        d = os.path.join(tmp, kind)
        subprocess.run([tasklm, "tokenizer", "train", "--data", corpus, "--vocab-size",
                        str(size), "--kind", kind, "--out", d], check=True)
        tok = AutoTokenizer.from_pretrained(d)
        assert isinstance(tok, PreTrainedTokenizerFast), type(tok)
        expected["tokenizers"][kind] = {
            "vocab_size": size,
            "hf_vocab_size": len(tok),
            "special": {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens},
            "ids": [tok(p)["input_ids"] for p in PROBES],
            "decoded": [tok.decode(tok(p)["input_ids"], skip_special_tokens=True) for p in PROBES],
        }
        print(kind, "vocab", len(tok), "first probe", expected["tokenizers"][kind]["ids"][0])
with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
    json.dump(expected, f, ensure_ascii=False, indent=1)
print("wrote", OUT)
