#!/usr/bin/env python3
"""Golden values for tasklm's ROUGE and Porter stemmer, from rouge-score 0.1.2 (with
use_stemmer=True) and nltk's PorterStemmer: the stem of every distinct word (length > 3) of
the dialogsum dev dialogues and summaries, and ROUGE-1/2/L precision, recall and F-measure of
corrupted predictions (fixed seed) against the first 200 dev summaries, plus a two-reference case.

Writes tests/fixtures/rouge_golden.json. Usage: python scripts/golden/rouge_fixture.py
"""
import json, os, random, re
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize
from versions import print_versions

print_versions('nltk', 'rouge-score')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rng = random.Random(0)
rows = [json.loads(l) for l in open(os.path.join(ROOT, "..", "shared", "data", "dialogsum", "dialogsum.dev.jsonl"))]
words = sorted({w for r in rows for w in re.sub(r"[^a-z0-9]+", " ", (r["dialogue"] + " " + r["summary"]).lower()).split() if len(w) > 3})
words += ["skies", "dying", "generalization", "oscillators", "hopping", "filing", "agreed", "happily", "relational", "conditional", "rational", "valency", "hesitancy", "digitizer", "conformabli", "radicalli", "differentli", "vileli", "analogousli", "vietnamization", "predication", "operator", "feudalism", "decisiveness", "hopefulness", "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate", "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness", "revival", "allowance", "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant", "replacement", "adjustment", "dependent", "adoption", "homologou", "communism", "activate", "angulariti", "homologous", "effective", "bowdlerize", "probate", "rate", "cease", "controll", "roll", "fully", "analogi", "tying", "succeeding"]
stemmer = porter.PorterStemmer()
stems = {w: stemmer.stem(w) for w in words}


def corrupt(s):
    out = []
    for w in s.split():
        r = rng.random()
        if r < 0.15:
            continue
        out.append(rng.choice(s.split()) if r < 0.25 else w)
    return " ".join(out)


sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
cases = []
for r in rows[:200]:
    pred = corrupt(r["summary"]) if rng.random() < 0.9 else ""
    refs = [r["summary"]]
    if rng.random() < 0.2:
        refs.append(corrupt(r["summary"]))
    s = sc.score_multi(refs, pred) if len(refs) > 1 else sc.score(refs[0], pred)
    cases.append({"prediction": pred, "references": refs,
                  **{k: [v.precision, v.recall, v.fmeasure] for k, v in s.items()}})
json.dump({"stems": stems, "cases": cases}, open(os.path.join(ROOT, "tests", "fixtures", "rouge_golden.json"), "w"))
print(len(stems), "stems,", len(cases), "cases")
