#!/usr/bin/env python3
"""Retrieval recall on SQuAD JSON with `tasklm index`: indexes every paragraph of every article
(ids `{title}/{paragraph index}`), asks the questions of the last `--test-articles` articles,
and prints recall@1/5/20 (the gold paragraph among the first k hits) for bm25, dense and hybrid,
with the build time, index size and query time per mode. Standard library only.

  python3 scripts/rag/squad_recall.py --tasklm target/release/tasklm \
      --squad ../shared/data/squad/train.json --index /tmp/squad-index [--model all-minilm-l6-v2]
"""
import argparse, json, os, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--tasklm", required=True)
ap.add_argument("--squad", required=True)
ap.add_argument("--index", required=True)
ap.add_argument("--model", default="all-minilm-l6-v2")
ap.add_argument("--test-articles", type=int, default=3)
a = ap.parse_args()

data = json.load(open(a.squad))["data"]
queries, gold = [], {}
for art in data[-a.test_articles:]:
    for p, para in enumerate(art["paragraphs"]):
        for qa in para["qas"]:
            queries.append({"id": qa["id"], "query": qa["question"]})
            gold[qa["id"]] = f"{art['title']}/{p}"

t0 = time.perf_counter()
subprocess.run([a.tasklm, "index", "build", "--model", a.model, "--data", a.squad, "--out", a.index],
               check=True, stdout=subprocess.DEVNULL)
build_s = time.perf_counter() - t0
stats = json.loads(subprocess.run([a.tasklm, "index", "stats", a.index], check=True,
                                  capture_output=True, text=True).stdout)
print(f"index: {stats['documents']} paragraphs of {len(data)} articles, {stats['chunks']} chunks "
      f"({stats['chunk_tokens']} tokens, overlap {stats['chunk_overlap']}), built in {build_s:.1f} s, "
      f"{stats['disk_bytes'] / 1e6:.1f} MB on disk, hnsw {stats['hnsw']}")
print(f"queries: {len(queries)} questions of the last {a.test_articles} articles")

with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    for q in queries:
        f.write(json.dumps(q) + "\n")
    qpath = f.name
print(f"{'mode':<8} {'R@1':>6} {'R@5':>6} {'R@20':>6} {'run s':>7}  (run: loading the index and model, all queries)")
for mode in ["bm25", "dense", "hybrid"]:
    t0 = time.perf_counter()
    out = subprocess.run([a.tasklm, "index", "search", a.index, "--queries", qpath, "-k", "20",
                          "--mode", mode], check=True, capture_output=True, text=True).stdout
    secs = time.perf_counter() - t0
    found = {1: 0, 5: 0, 20: 0}
    lines = [json.loads(l) for l in out.splitlines()]
    assert len(lines) == len(queries), (len(lines), len(queries))
    for line in lines:
        docs = [h["doc_id"] for h in line["hits"]]
        for k in found:
            found[k] += gold[line["id"]] in docs[:k]
    n = len(lines)
    print(f"{mode:<8} {found[1] / n:>6.3f} {found[5] / n:>6.3f} {found[20] / n:>6.3f} {secs:>7.1f}")
os.unlink(qpath)
