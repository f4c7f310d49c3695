#!/usr/bin/env bash
# Fine-tunes all-minilm-l6-v2 for NER on the first 4,000 sentences of conll2003/train.txt
# (first sub-token labelled, max length 128) and scores conll2003/valid.txt with seqeval's
# entity F1, untrained head first. Usage: recipes/minilm-conll.sh [OUT_DIR]
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
OUT=${1:-/tmp/tasklm-minilm-conll}
T=(${THREADS:+--threads "$THREADS"})
TRAIN=$(mktemp --suffix=.txt)
trap 'rm -f "$TRAIN"' EXIT
# The first 4,000 sentences (a blank line ends each).
awk 'BEGIN { n = 0 } /^-DOCSTART-/ { next } { print } /^[[:space:]]*$/ { if (++n >= 4000) exit }' \
  "$DATA/conll2003/train.txt" > "$TRAIN"
echo "untrained head:"
"$TASKLM" "${T[@]}" eval --task ner --model all-minilm-l6-v2 --data "$DATA/conll2003/valid.txt" --max-seq-len 128 --json
"$TASKLM" "${T[@]}" train --task ner --model all-minilm-l6-v2 --data "$TRAIN" --out "$OUT" \
  --max-seq-len 128 --config recipes/minilm-conll.toml
echo "fine-tuned:"
"$TASKLM" "${T[@]}" eval --task ner --model "$OUT" --data "$DATA/conll2003/valid.txt" --json
