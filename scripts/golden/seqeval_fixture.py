#!/usr/bin/env python3
"""Golden values for tasklm's entity-level NER metric, from the `seqeval` package (1.2.2):
precision/recall/F1 (micro, seqeval's default mode) overall and per type, on tag sequences
drawn with a fixed seed from the real CoNLL-2003 validation tags with random corruptions
(type swaps, boundary shifts, I- without B-, dropped and invented entities).

Writes tests/fixtures/seqeval_golden.json. Usage: python scripts/golden/seqeval_fixture.py
"""
import json, os, random
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from versions import print_versions

print_versions('seqeval')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rng = random.Random(0)
TYPES = ["PER", "ORG", "LOC", "MISC"]


def sentences(path, n):
    out, cur = [], []
    for line in open(path):
        line = line.strip()
        if not line:
            if cur:
                out.append(cur)
                cur = []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        cur.append(line.split()[-1])
    return out[:n]


def corrupt(tags):
    t = list(tags)
    for i in range(len(t)):
        r = rng.random()
        if r < 0.05 and t[i] != "O":
            t[i] = t[i][:2] + rng.choice(TYPES)
        elif r < 0.08:
            t[i] = "O"
        elif r < 0.10:
            t[i] = rng.choice(["B-", "I-"]) + rng.choice(TYPES)
        elif r < 0.12 and t[i].startswith("B-"):
            t[i] = "I-" + t[i][2:]
    return t


data = os.path.join(ROOT, "..", "shared", "data", "conll2003", "valid.txt")
truth = sentences(data, 400)
pred = [corrupt(s) for s in truth]
report = classification_report(truth, pred, output_dict=True, digits=10)
per_type = {k: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"],
                "support": int(v["support"])} for k, v in report.items() if k in TYPES}
out = {"truth": truth, "predicted": pred,
       "overall": {"precision": precision_score(truth, pred), "recall": recall_score(truth, pred),
                   "f1": f1_score(truth, pred)},
       "per_type": per_type}
json.dump(out, open(os.path.join(ROOT, "tests", "fixtures", "seqeval_golden.json"), "w"))
print("overall", out["overall"])
