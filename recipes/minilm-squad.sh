#!/usr/bin/env bash
# Extractive QA on all-minilm-l6-v2 with squad/train.json (8,582 questions in 38 articles):
# the last 3 articles are held out for evaluation, the model trains on the other 35 (max
# length 256, doc stride 128, question first), then EM/F1 on the held-out articles, untrained
# head first. Usage: recipes/minilm-squad.sh [OUT_DIR]
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores), PYTHON (default python3; only splits the JSON file).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
OUT=${1:-/tmp/tasklm-minilm-squad}
T=(${THREADS:+--threads "$THREADS"})
SPLIT=$(mktemp -d)
trap 'rm -rf "$SPLIT"' EXIT
"${PYTHON:-python3}" - "$DATA/squad/train.json" "$SPLIT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
json.dump({"data": d["data"][:35]}, open(sys.argv[2] + "/train.json", "w"))
json.dump({"data": d["data"][35:]}, open(sys.argv[2] + "/heldout.json", "w"))
PY
echo "untrained head:"
"$TASKLM" "${T[@]}" eval --task qa --model all-minilm-l6-v2 --data "$SPLIT/heldout.json" --max-seq-len 256 --doc-stride 128 --json
"$TASKLM" "${T[@]}" train --task qa --model all-minilm-l6-v2 --data "$SPLIT/train.json" --out "$OUT" \
  --max-seq-len 256 --doc-stride 128 --config recipes/minilm-squad.toml
echo "fine-tuned:"
"$TASKLM" "${T[@]}" eval --task qa --model "$OUT" --data "$SPLIT/heldout.json" --json
