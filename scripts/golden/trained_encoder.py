#!/usr/bin/env python3
"""Loads a directory written by `tasklm train` for an encoder task in transformers and checks
that it answers as `tasklm predict` does:

- BertForSequenceClassification: the same label and softmax score (|diff| <= 1e-4);
- BertForTokenClassification: the same tag (argmax at each word's first sub-token) for every word;
- BertForQuestionAnswering: loads, and its best in-window span is tasklm's answer.

Usage: python scripts/golden/trained_encoder.py --dir DIR --tasklm target/release/tasklm
"""
import argparse, json, subprocess, sys
import torch
from transformers import (AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)
from versions import print_versions

print_versions()

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--tasklm", required=True)
a = ap.parse_args()
arch = json.load(open(f"{a.dir}/config.json"))["architectures"][0]
tok = AutoTokenizer.from_pretrained(a.dir)


def tasklm(task, records):
    out = subprocess.run([a.tasklm, "predict", "--task", task, "--model", a.dir],
                         input="".join(json.dumps(r) + "\n" for r in records),
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


texts = ["a wonderful, moving film with brilliant acting", "a dull and boring mess",
         "Peter Blackburn visited the European Commission in Brussels on Monday."]
worst = 0.0
if arch == "BertForSequenceClassification":
    m = AutoModelForSequenceClassification.from_pretrained(a.dir).eval()
    ours = tasklm("classify", [{"text": t} for t in texts])
    for t, o in zip(texts, ours):
        with torch.no_grad():
            p = torch.softmax(m(**tok(t, return_tensors="pt")).logits[0], -1)
        i = int(p.argmax())
        label = m.config.id2label[i]
        worst = max(worst, abs(float(p[i]) - o["score"]))
        print(f"{t!r}: transformers {label} {float(p[i]):.6f}, tasklm {o['label']} {o['score']:.6f}")
        assert label == o["label"], (t, label, o)
elif arch == "BertForTokenClassification":
    m = AutoModelForTokenClassification.from_pretrained(a.dir).eval()
    words = ["Peter", "Blackburn", "visited", "the", "European", "Commission", "in", "Brussels", "."]
    enc = tok(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        p = torch.softmax(m(**enc).logits[0], -1)
    seen, tags = set(), []
    for pos, w in enumerate(enc.word_ids()):
        if w is not None and w not in seen:
            seen.add(w)
            tags.append(m.config.id2label[int(p[pos].argmax())])
    ents = tasklm("ner", [{"text": " ".join(words)}])[0]["entities"]
    print("transformers tags:", tags)
    print("tasklm entities:", [(e["entity"], e["type"]) for e in ents])
    starts = [i for i, t in enumerate(tags) if t != "O" and (t.startswith("B-") or i == 0 or tags[i - 1] == "O" or tags[i - 1][2:] != t[2:])]
    assert len(starts) == len(ents), (tags, ents)
elif arch == "BertForQuestionAnswering":
    m = AutoModelForQuestionAnswering.from_pretrained(a.dir).eval()
    q, c = "Where is the Eiffel Tower?", "The Eiffel Tower is in Paris, France, on the Champ de Mars."
    enc = tok(q, c, return_tensors="pt", return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0]
    with torch.no_grad():
        out = m(**enc)
    s, e = out.start_logits[0], out.end_logits[0]
    ctx = [i for i, t in enumerate(enc.sequence_ids()) if t == 1]
    best = max(((s[i] + e[j]).item(), i, j) for i in ctx for j in ctx if i <= j < i + 30)
    answer = c[int(offsets[best[1]][0]):int(offsets[best[2]][1])]
    ours = tasklm("qa", [{"question": q, "context": c}])[0]
    assert answer == ours["answer"], (answer, ours)
else:
    sys.exit(f"{arch}: not an encoder task architecture")
print(f"{arch}: transformers agrees with tasklm predict; max |score diff| {worst:.2e}")
