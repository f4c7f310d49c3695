#!/usr/bin/env python3
"""Which hybrid fusion rule? Asks every SQuAD question of train.json's 38 articles through
`tasklm index search` (bm25 and dense, 100 hits each) and prints recall@1/5/20 of several
fusion rules computed here from those two rankings, on the first 35 articles' questions
(where a rule may be chosen) and on the last 3's (the split the README's tables use).
Standard library only.

  python3 scripts/rag/fusion_study.py --tasklm target/release/tasklm \
      --squad ../shared/data/squad/train.json --index /tmp/squad-index

Rules: rrf (k = 60); relative score fusion (min-max over each ranking's hits, the index's
default) with bm25 weights 0.45/0.5/0.55 and over the first 20 or 50 hits only; dbsf
(distribution-based score fusion as Qdrant's: each ranking scaled by mean +- 3 standard
deviations). The index is built with `tasklm index build --data train.json` (ids `title/p`).
"""
import argparse, collections, json, statistics, subprocess, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--tasklm", required=True)
ap.add_argument("--squad", required=True)
ap.add_argument("--index", required=True)
a = ap.parse_args()

data = json.load(open(a.squad))["data"]
queries, gold, split = [], {}, {}
for ai, art in enumerate(data):
    for p, para in enumerate(art["paragraphs"]):
        for qa in para["qas"]:
            queries.append({"id": qa["id"], "query": qa["question"]})
            gold[qa["id"]] = f"{art['title']}/{p}"
            split[qa["id"]] = "first 35" if ai < len(data) - 3 else "last 3"
with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
    f.writelines(json.dumps(q) + "\n" for q in queries)
    f.flush()

    def ranking(mode):
        out = subprocess.run([a.tasklm, "index", "search", a.index, "--queries", f.name, "-k", "100",
                              "--mode", mode], check=True, capture_output=True, text=True).stdout
        return {j["id"]: [((h["doc_id"], h["chunk"]), h["score"]) for h in j["hits"]]
                for j in map(json.loads, out.splitlines())}

    bm25, dense = ranking("bm25"), ranking("dense")


def minmax(r):
    if not r:
        return {}
    lo, hi = min(s for _, s in r), max(s for _, s in r)
    return {c: (s - lo) / (hi - lo) if hi > lo else 1.0 for c, s in r}


def dbsf(r):
    if len(r) < 2:
        return {c: 1.0 for c, _ in r}
    s = [x for _, x in r]
    m, sd = statistics.mean(s), statistics.pstdev(s) or 1.0
    return {c: (x - m + 3 * sd) / (6 * sd) for c, x in r}


def weighted(norm, w, depth=100):
    def rank(b, d):
        sc = collections.defaultdict(float)
        for c, s in norm(b[:depth]).items():
            sc[c] += w * s
        for c, s in norm(d[:depth]).items():
            sc[c] += (1 - w) * s
        return sorted(sc, key=lambda c: (-sc[c], c))
    return rank


def rrf(b, d, k=60):
    sc = collections.defaultdict(float)
    for r in (b, d):
        for i, (c, _) in enumerate(r):
            sc[c] += 1 / (k + i + 1)
    return sorted(sc, key=lambda c: (-sc[c], c))


rules = [("bm25", lambda b, d: [c for c, _ in b]), ("dense", lambda b, d: [c for c, _ in d]),
         ("rrf", rrf), ("dbsf", weighted(dbsf, 0.5))]
rules += [(f"scores, bm25 weight {w}", weighted(minmax, w)) for w in (0.45, 0.5, 0.55)]
rules += [(f"scores, first {n} hits", weighted(minmax, 0.5, n)) for n in (20, 50)]
print(f"{'rule':<26} {'first 35: R@1/5/20':>20} {'last 3: R@1/5/20':>20}")
for name, rule in rules:
    cells = []
    for part in ("first 35", "last 3"):
        ids = [q["id"] for q in queries if split[q["id"]] == part]
        found = collections.Counter()
        for i in ids:
            docs = [c[0] for c in rule(bm25[i], dense[i])]
            for k in (1, 5, 20):
                found[k] += gold[i] in docs[:k]
        cells.append("/".join(f"{found[k] / len(ids):.3f}" for k in (1, 5, 20)))
    print(f"{name:<26} {cells[0]:>20} {cells[1]:>20}", flush=True)
