#!/usr/bin/env bash
# Fine-tunes all-minilm-l6-v2 on the first 8,000 rows of SST-2 (max length 64) and scores
# sst2/dev.tsv, untrained head first. Usage: recipes/minilm-sst2.sh [OUT_DIR]
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
OUT=${1:-/tmp/tasklm-minilm-sst2}
T=(${THREADS:+--threads "$THREADS"})
TRAIN=$(mktemp --suffix=.tsv)
trap 'rm -f "$TRAIN"' EXIT
head -n 8001 "$DATA/sst2/train.tsv" > "$TRAIN"
echo "untrained head:"
"$TASKLM" "${T[@]}" eval --task classify --model all-minilm-l6-v2 --data "$DATA/sst2/dev.tsv" --max-seq-len 64 --json
"$TASKLM" "${T[@]}" train --task classify --model all-minilm-l6-v2 --data "$TRAIN" --out "$OUT" \
  --max-seq-len 64 --config recipes/minilm-sst2.toml
echo "fine-tuned:"
"$TASKLM" "${T[@]}" eval --task classify --model "$OUT" --data "$DATA/sst2/dev.tsv" --json
