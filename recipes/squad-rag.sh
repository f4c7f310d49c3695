#!/usr/bin/env bash
# Retrieval-augmented QA on SQuAD (issue 17) with squad/train.json (38 articles): every
# paragraph of all 38 articles is indexed; the retriever trains on the questions of the first
# 35 articles and every figure is measured on the questions of the last 3.
#   step 1  split: the first 35 articles' questions -> OUT/split/train.json (SQuAD JSON)
#   step 2  retriever: every paragraph indexed with MiniLM as shipped (OUT/index-all-minilm-l6-v2),
#           each training question paired with its paragraph and a BM25-mined hard negative
#           (scripts/rag/squad_pairs.py), all-minilm-l6-v2 trained on the pairs with --task
#           retrieval -> OUT/retriever (skipped when OUT/retriever already holds a model; delete
#           it to retrain; an interrupted run resumes from its last checkpoint)
#   step 3  recall@1/5/20 (bm25, dense, hybrid) with MiniLM as shipped and with OUT/retriever
#   steps 4-6  RAG EM/F1 (retrieved, closed-book, gold) of SmolLM2 as shipped and of a genqa
#           fine-tune (every 16th training question) on every 5th held-out question
# Usage: recipes/squad-rag.sh OUT_DIR
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores), PYTHON (default python3; standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-python3}
OUT=${1:?usage: recipes/squad-rag.sh OUT_DIR}
T=(${THREADS:+--threads "$THREADS"})
SQUAD="$DATA/squad/train.json"
mkdir -p "$OUT/split"

echo "== step 1: split (train on the first 35 articles, measure on the last 3)"
"$PYTHON" - "$SQUAD" "$OUT/split" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
json.dump({"data": d[:35]}, open(sys.argv[2] + "/train.json", "w"))
json.dump({"data": d[35:]}, open(sys.argv[2] + "/heldout.json", "w"))
n = lambda arts: sum(len(p["qas"]) for a in arts for p in a["paragraphs"])
print(f"train: {n(d[:35])} questions of {len(d[:35])} articles; held out: {n(d[35:])} of {len(d[35:])}")
PY

echo "== step 2: retriever (hard negatives mined by BM25, multiple-negatives ranking loss) -> $OUT/retriever"
if [ -f "$OUT/retriever/model.safetensors" ]; then
  echo "$OUT/retriever already holds a trained model: kept (delete it to retrain)"
else
  if [ ! -f "$OUT/index-all-minilm-l6-v2/CURRENT" ]; then
    "$TASKLM" "${T[@]}" index build --model all-minilm-l6-v2 --data "$SQUAD" --out "$OUT/index-all-minilm-l6-v2"
  fi
  "$PYTHON" scripts/rag/squad_pairs.py --tasklm "$TASKLM" --squad "$OUT/split/train.json" \
    --index "$OUT/index-all-minilm-l6-v2" --out "$OUT/split/pairs.jsonl"
  start=$(date +%s)
  "$TASKLM" "${T[@]}" train --task retrieval --model all-minilm-l6-v2 \
    --data "$OUT/split/pairs.jsonl" --out "$OUT/retriever" --config recipes/squad-retriever.toml \
    --save-every 20 --save-total-limit 1 $([ -d "$OUT/retriever/checkpoints" ] && echo --resume)
  echo "retriever trained in $(( $(date +%s) - start )) s"
fi

echo "== step 3: recall on the held-out questions, all 38 articles' paragraphs indexed"
for model in all-minilm-l6-v2 "$OUT/retriever"; do
  name=$(basename "$model")
  echo "-- $model"
  rm -rf "$OUT/index-$name"
  "$PYTHON" scripts/rag/squad_recall.py --tasklm "$TASKLM" --squad "$SQUAD" \
    --index "$OUT/index-$name" --model "$model"
done

echo "== step 4: the RAG slice: every 5th held-out question (127), every 16th training question (497) for the generator"
"$PYTHON" - "$SQUAD" "$OUT/split" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
def every(arts, step):
    i, out = 0, []
    for a in arts:
        ps = []
        for p in a["paragraphs"]:
            qs = [q for j, q in enumerate(p["qas"], start=i) if j % step == 0]
            i += len(p["qas"])
            ps.append({"context": p["context"], "qas": qs})
        out.append({"title": a["title"], "paragraphs": ps})
    return {"data": out}
for name, arts, step in [("rag_eval.json", d[35:], 5), ("genqa_train.json", d[:35], 16)]:
    s = every(arts, step)
    json.dump(s, open(f"{sys.argv[2]}/{name}", "w"))
    print(name, sum(len(p["qas"]) for a in s["data"] for p in a["paragraphs"]), "questions")
PY

# rag_eval GEN LABEL: EM/F1 of GEN with 3 retrieved passages (hybrid, the trained retriever's
# index), closed-book, and on the gold paragraph.
rag_eval() {
  for context in retrieved none gold; do
    echo "-- $2, context $context"
    "$TASKLM" "${T[@]}" eval --task rag --model "$1" --data "$OUT/split/rag_eval.json" \
      --index "$OUT/index-retriever" --context "$context" \
      --predictions "$OUT/rag-$2-$context.jsonl" --json
  done
}
echo "== step 5: RAG with smollm2-135m-instruct as shipped"
rag_eval smollm2-135m-instruct smollm2

echo "== step 6: RAG with a genqa fine-tune of SmolLM2 on context + question -> $OUT/genqa"
if [ -f "$OUT/genqa/model.safetensors" ]; then
  echo "$OUT/genqa already holds a trained model: kept (delete it to retrain)"
else
  "$TASKLM" "${T[@]}" train --task genqa --model smollm2-135m-instruct \
    --data "$OUT/split/genqa_train.json" --out "$OUT/genqa" --epochs 1 --batch-size 4 --lr 1e-4 \
    --warmup-ratio 0.05 --scheduler cosine --max-seq-len 384 --save-every 20 --save-total-limit 1 \
    $([ -d "$OUT/genqa" ] && echo --resume)
fi
rag_eval "$OUT/genqa" genqa
