#!/usr/bin/env python3
"""Retrieval training pairs with BM25-mined hard negatives, as DPR trains its retriever: for
every question of a SQuAD JSON file, `{"query", "positive", "negative"}` where the positive is
its paragraph and the negative is the highest-ranked BM25 hit of `tasklm index search` that is
another paragraph of the same file and does not contain any of the question's answers (a
paragraph holding the answer is likely a false negative). Questions without such a hit within
the first `--depth` get no negative. Standard library only.

  python3 scripts/rag/squad_pairs.py --tasklm target/release/tasklm --squad train.json \
      --index INDEX --out pairs.jsonl

INDEX must hold the file's paragraphs under the ids `tasklm index build` gives SQuAD JSON
(`{title}/{paragraph index}`); other documents in it are never used as negatives.
"""
import argparse, json, subprocess, tempfile, os

ap = argparse.ArgumentParser()
ap.add_argument("--tasklm", required=True)
ap.add_argument("--squad", required=True)
ap.add_argument("--index", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--depth", type=int, default=10, help="BM25 hits searched for a negative")
a = ap.parse_args()

paragraphs, questions = {}, []
for art in json.load(open(a.squad))["data"]:
    for p, para in enumerate(art["paragraphs"]):
        pid = f"{art['title']}/{p}"
        paragraphs[pid] = para["context"]
        for qa in para["qas"]:
            answers = [x["text"] for x in qa.get("answers", []) if x["text"].strip()]
            questions.append((qa["question"], pid, answers))

with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    for i, (q, _, _) in enumerate(questions):
        f.write(json.dumps({"id": str(i), "query": q}) + "\n")
    qpath = f.name
proc = subprocess.run([a.tasklm, "index", "search", a.index, "--queries", qpath, "-k", str(a.depth),
                       "--mode", "bm25"], check=True, capture_output=True, text=True)
os.unlink(qpath)

with_negative = 0
with open(a.out, "w") as out:
    for line in proc.stdout.splitlines():
        hit = json.loads(line)
        q, pid, answers = questions[int(hit["id"])]
        pair = {"query": q, "positive": paragraphs[pid]}
        for h in hit["hits"]:
            text = paragraphs.get(h["doc_id"])
            if h["doc_id"] != pid and text is not None and not any(x in text for x in answers):
                pair["negative"] = text
                with_negative += 1
                break
        out.write(json.dumps(pair) + "\n")
print(f"{a.out}: {len(questions)} pairs, {with_negative} with a BM25 hard negative")
