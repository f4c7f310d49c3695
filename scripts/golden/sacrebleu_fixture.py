#!/usr/bin/env python3
"""Golden values for tasklm's BLEU and chrF, from sacrebleu 2.4.3 with its defaults: the
first 300 German lines of multi30k val as references, hypotheses made from them with a fixed
seed (dropped, swapped and replaced words, changed punctuation and numbers, empty lines), a
second reference stream for the multi-reference case, and the 13a tokenization of every line.

Writes tests/fixtures/sacrebleu_golden.json. Usage: python scripts/golden/sacrebleu_fixture.py
"""
import gzip, json, os, random
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from versions import print_versions

print_versions('sacrebleu')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rng = random.Random(0)
refs = [l.rstrip("\n") for l in gzip.open(os.path.join(ROOT, "..", "shared", "data", "multi30k", "val.de.gz"), "rt")][:300]
extra = ["Das kostet 3,50 € (oder $4.20) - heute!", "Er sagte: \"Ja.\"", "1-2-3 &amp; fertig...", ""]


def corrupt(line):
    words = line.split()
    out = []
    for w in words:
        r = rng.random()
        if r < 0.1:
            continue
        if r < 0.2:
            out.append(rng.choice(words))
        elif r < 0.25:
            out.append(w + ",")
        else:
            out.append(w)
    if rng.random() < 0.2 and len(out) > 2:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    if rng.random() < 0.03:
        return ""
    return " ".join(out)


hyps = [corrupt(r) for r in refs] + extra
refs1 = refs + extra
refs2 = [corrupt(r) for r in refs] + ["Das kostet 3.50 €.", "Ja.", "fertig", "leer"]
tok = Tokenizer13a()
out = {"hypotheses": hyps, "refs": refs1, "refs2": refs2,
       "tokenized": [tok(l) for l in hyps + refs1]}
for name, streams in [("single", [refs1]), ("multi", [refs1, refs2])]:
    bm, cm = BLEU(), CHRF()
    b = bm.corpus_score(hyps, streams)
    c = cm.corpus_score(hyps, streams)
    out[name] = {"bleu": b.score, "precisions": b.precisions, "bp": b.bp, "sys_len": b.sys_len,
                 "ref_len": b.ref_len, "bleu_signature": str(bm.get_signature()), "chrf_signature": str(cm.get_signature()),
                 "chrf": c.score}
    print(name, b, c)
json.dump(out, open(os.path.join(ROOT, "tests", "fixtures", "sacrebleu_golden.json"), "w"), ensure_ascii=False)
