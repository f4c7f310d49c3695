#!/usr/bin/env bash
# Fine-tunes all-minilm-l6-v2 on all of MNLI dev-matched (9,815 pairs, max length 128) and
# scores nli/snli_dev_part1.jsonl, untrained head first. Usage: recipes/minilm-nli.sh [OUT_DIR]
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
OUT=${1:-/tmp/tasklm-minilm-nli}
T=(${THREADS:+--threads "$THREADS"})
echo "untrained head:"
"$TASKLM" "${T[@]}" eval --task nli --model all-minilm-l6-v2 --data "$DATA/nli/snli_dev_part1.jsonl" --max-seq-len 128 --json
"$TASKLM" "${T[@]}" train --task nli --model all-minilm-l6-v2 --data "$DATA/nli/mnli_dev_matched.jsonl" --out "$OUT" \
  --max-seq-len 128 --config recipes/minilm-mnli.toml
echo "fine-tuned:"
"$TASKLM" "${T[@]}" eval --task nli --model "$OUT" --data "$DATA/nli/snli_dev_part1.jsonl" --json
