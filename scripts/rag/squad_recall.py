#!/usr/bin/env python3
"""Retrieval recall on SQuAD JSON with `tasklm index`: indexes every paragraph of every article
(ids `{title}/{paragraph index}`), asks the questions of the last `--test-articles` articles,
and prints recall@1/5/20 (the gold paragraph among the first k hits) for bm25, dense and hybrid
(relative score fusion, the default, and reciprocal rank fusion, `hybrid rrf`),
with the build time, index size, run time and per-query latency (p50/p99, `--latency`) per mode.
Standard library only.

  python3 scripts/rag/squad_recall.py --tasklm target/release/tasklm \
      --squad ../shared/data/squad/train.json --index /tmp/squad-index [--model all-minilm-l6-v2] \
      [--store postgres://USER:PASSWORD@HOST:PORT/DB?index=squad]

With `--store`, the same documents are also indexed into that PostgreSQL store and asked the
same questions (its keyword mode is Postgres full-text search; dense also `--approximate`
through the HNSW index), and the exact dense top-20 of every question is compared with the
index directory's (document, chunk row, score).
"""
import argparse, json, re, subprocess, tempfile, time, os

ap = argparse.ArgumentParser()
ap.add_argument("--tasklm", required=True)
ap.add_argument("--squad", required=True)
ap.add_argument("--index", required=True)
ap.add_argument("--store", help="also a PostgreSQL store: postgres://...")
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

with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    for q in queries:
        f.write(json.dumps(q) + "\n")
    qpath = f.name


def redact(url):
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def run_store(name, target, build_flag):
    t0 = time.perf_counter()
    subprocess.run([a.tasklm, "index", "build", "--model", a.model, "--data", a.squad, build_flag, target],
                   check=True, stdout=subprocess.DEVNULL)
    build_s = time.perf_counter() - t0
    stats = json.loads(subprocess.run([a.tasklm, "index", "stats", target], check=True,
                                      capture_output=True, text=True).stdout)
    print(f"\n[{name}] {redact(target)}: {stats['documents']} paragraphs of {len(data)} articles, "
          f"{stats['chunks']} chunks ({stats['chunk_tokens']} tokens, overlap {stats['chunk_overlap']}), "
          f"built in {build_s:.1f} s, {stats['disk_bytes'] / 1e6:.1f} MB on disk, hnsw {stats['hnsw']}")
    print(f"queries: {len(queries)} questions of the last {a.test_articles} articles")
    print(f"{'mode':<13} {'R@1':>6} {'R@5':>6} {'R@20':>6} {'run s':>7} {'search p50/p99 ms':>18} "
          f"{'query p50/p99 ms':>17}  (run: loading index and model, all queries; query: search + "
          f"its share of batched embedding)")
    modes = [("bm25", []), ("dense", []), ("hybrid", []), ("hybrid rrf", ["--fusion", "rrf"])]
    if build_flag == "--store":
        modes += [("dense approx", ["--approximate"]), ("hybrid approx", ["--approximate"])]
    results = {}
    for label, extra in modes:
        mode = label.split()[0]
        t0 = time.perf_counter()
        proc = subprocess.run([a.tasklm, "index", "search", target, "--queries", qpath, "-k", "20",
                               "--mode", mode, "--latency", *extra], check=True, capture_output=True,
                              text=True)
        secs = time.perf_counter() - t0
        lat = {}
        for line in proc.stderr.splitlines():
            if line.startswith("latency "):
                lat = json.loads(line[len("latency "):])
        found = {1: 0, 5: 0, 20: 0}
        lines = [json.loads(l) for l in proc.stdout.splitlines()]
        assert len(lines) == len(queries), (len(lines), len(queries))
        for line in lines:
            docs = [h["doc_id"] for h in line["hits"]]
            for k in found:
                found[k] += gold[line["id"]] in docs[:k]
        n = len(lines)
        results[label] = lines
        print(f"{label:<13} {found[1] / n:>6.3f} {found[5] / n:>6.3f} {found[20] / n:>6.3f} {secs:>7.1f} "
              f"{lat.get('search_ms_p50', 0):>8.2f}/{lat.get('search_ms_p99', 0):<9.2f}"
              f"{lat.get('query_ms_p50', 0):>8.2f}/{lat.get('query_ms_p99', 0):<8.2f}")
    return results


embedded = run_store("index directory", a.index, "--out")
if a.store:
    pg = run_store("postgres", a.store, "--store")
    key = lambda line: [(h["doc_id"], h["chunk"], h["score"]) for h in line["hits"]]
    same = sum(key(x) == key(y) for x, y in zip(embedded["dense"], pg["dense"]))
    same_docs = sum([h["doc_id"] for h in x["hits"]] == [h["doc_id"] for h in y["hits"]]
                    for x, y in zip(embedded["dense"], pg["dense"]))
    print(f"\nexact dense top-20, postgres vs index directory: {same}/{len(queries)} questions identical "
          f"(document, chunk row and score), {same_docs}/{len(queries)} the same documents in order")
    for k in (1, 5, 20):
        approx = sum(set((h["doc_id"], h["chunk"]) for h in x["hits"][:k]) ==
                     set((h["doc_id"], h["chunk"]) for h in y["hits"][:k])
                     for x, y in zip(pg["dense"], pg["dense approx"]))
        print(f"postgres --approximate (HNSW, ef_search 100): top-{k} set equal to exact on "
              f"{approx}/{len(queries)} questions")
os.unlink(qpath)
