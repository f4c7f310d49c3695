#!/usr/bin/env bash
# Retrieval-augmented QA on SQuAD (issue 17) with squad/train.json (38 articles): every
# paragraph of all 38 articles is indexed; the retriever trains on the questions of the first
# 35 articles and every figure is measured on the questions of the last 3.
#   step 1  split: the first 35 articles' questions -> OUT/split/train.json (SQuAD JSON)
#   step 2  retriever: all-minilm-l6-v2 trained with --task retrieval -> OUT/retriever
#           (skipped when OUT/retriever already holds a model; delete it to retrain)
#   step 3  recall@1/5/20 (bm25, dense, hybrid) with MiniLM as shipped and with OUT/retriever
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

echo "== step 2: retriever (multiple-negatives ranking loss) -> $OUT/retriever"
if [ -f "$OUT/retriever/model.safetensors" ]; then
  echo "$OUT/retriever already holds a trained model: kept (delete it to retrain)"
else
  start=$(date +%s)
  "$TASKLM" "${T[@]}" train --task retrieval --model all-minilm-l6-v2 \
    --data "$OUT/split/train.json" --out "$OUT/retriever" --config recipes/squad-retriever.toml
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
