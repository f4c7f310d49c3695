#!/usr/bin/env python3
"""Checks that a directory written by `tasklm train --task retrieval` is a sentence-transformers
model that embeds as tasklm does, and that `tasklm index` takes it:

- SentenceTransformer(DIR).encode and `tasklm embed --model DIR` on the same texts (the last
  3 SQuAD articles' first questions and paragraphs: short texts and texts past
  max_seq_length, so cutting is compared too) agree to 1e-5 cosine, every one of them;
- `tasklm index build --model DIR` indexes the paragraphs, and `tasklm index search` in dense
  mode finds each paragraph first when asked its own text.

Usage: python scripts/golden/trained_retriever.py --dir DIR --tasklm target/release/tasklm
           [--squad ../shared/data/squad/train.json] [-n 100]
"""
import argparse, json, os, subprocess, tempfile
import numpy as np
from sentence_transformers import SentenceTransformer
from versions import print_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--tasklm", required=True)
ap.add_argument("--squad", default=os.path.join(ROOT, "..", "shared", "data", "squad", "train.json"))
ap.add_argument("-n", type=int, default=100)
a = ap.parse_args()
print_versions("sentence-transformers")

arts = json.load(open(a.squad))["data"][-3:]
paragraphs = [p["context"] for art in arts for p in art["paragraphs"]]
questions = [q["question"] for art in arts for p in art["paragraphs"] for q in p["qas"]]
texts = questions[: a.n // 2] + paragraphs[: a.n - a.n // 2]

model = SentenceTransformer(a.dir, device="cpu")
ref = model.encode(texts, batch_size=32, convert_to_numpy=True)
out = subprocess.run([a.tasklm, "embed", "--model", a.dir], input="".join(
    json.dumps({"text": t}) + "\n" for t in texts), capture_output=True, text=True, check=True).stdout
ours = np.array([json.loads(l)["embedding"] for l in out.splitlines() if l.strip()], dtype=np.float32)
assert ours.shape == ref.shape, (ours.shape, ref.shape)
cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
print(f"{len(texts)} texts ({a.n // 2} questions, {a.n - a.n // 2} paragraphs), max_seq_length "
      f"{model.max_seq_length}: min cosine {cos.min():.8f}, max |diff| {np.abs(ours - ref).max():.2e}")
assert cos.min() >= 1 - 1e-5, cos.min()

with tempfile.TemporaryDirectory() as tmp:
    docs = os.path.join(tmp, "docs.jsonl")
    with open(docs, "w") as f:
        for i, p in enumerate(paragraphs[:20]):
            f.write(json.dumps({"id": f"p{i}", "title": "t", "text": p}) + "\n")
    index = os.path.join(tmp, "index")
    subprocess.run([a.tasklm, "index", "build", "--model", a.dir, "--data", docs, "--out", index],
                   check=True, stdout=subprocess.DEVNULL)
    queries = os.path.join(tmp, "q.jsonl")
    with open(queries, "w") as f:
        for i, p in enumerate(paragraphs[:20]):
            f.write(json.dumps({"id": f"p{i}", "query": p}) + "\n")
    res = subprocess.run([a.tasklm, "index", "search", index, "--queries", queries, "-k", "1",
                          "--mode", "dense"], check=True, capture_output=True, text=True).stdout
    hits = [json.loads(l) for l in res.splitlines()]
    found = sum(h["hits"][0]["doc_id"] == h["id"] for h in hits)
    print(f"tasklm index build/search with {a.dir}: {found}/{len(hits)} paragraphs find themselves first")
    assert found == len(hits)
print("ok")
