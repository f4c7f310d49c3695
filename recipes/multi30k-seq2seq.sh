#!/usr/bin/env bash
# Translation trained from scratch (issue 16): Multi30k en->de, a joint Unigram tokenizer and a
# small Marian-style encoder-decoder trained on the 29,000 training pairs with label smoothing
# 0.1, the checkpoint chosen by sacreBLEU on val (every 900 updates and at the end), then
# scored on test_2016_flickr with sacreBLEU (cased, detokenized; the signature is printed),
# greedy and beam 5. Interrupted runs resume from their last checkpoint (every 300 updates).
#   step 1  tokenizer: Unigram, 8,000 pieces, on both sides of train -> OUT/tokenizer
#   step 2  model: recipes/multi30k-marian.toml, trainer recipes/multi30k-seq2seq.toml -> OUT
#   step 3  test_2016_flickr: greedy and 5 beams
# Usage: recipes/multi30k-seq2seq.sh OUT_DIR [extra train flags, e.g. --max-steps 20]
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
OUT=${1:?usage: recipes/multi30k-seq2seq.sh OUT_DIR [train flags]}
shift
T=(${THREADS:+--threads "$THREADS"})
M="$DATA/multi30k"
LANGS=(--src-lang en --tgt-lang de)
mkdir -p "$OUT"

echo "== step 1: tokenizer -> $OUT/tokenizer"
if [ -f "$OUT/tokenizer/tokenizer.json" ]; then
  echo "kept (delete $OUT/tokenizer to retrain it)"
else
  "$TASKLM" "${T[@]}" tokenizer train --data "$M/train.en.gz" "$M/train.de.gz" \
    --vocab-size 8000 --kind unigram --out "$OUT/tokenizer"
fi

echo "== step 2: train from scratch -> $OUT"
if [ -f "$OUT/model.safetensors" ]; then
  echo "$OUT already holds a trained model: kept (delete it to retrain)"
else
  start=$(date +%s)
  "$TASKLM" "${T[@]}" train --task translate --arch marian \
    --model-config recipes/multi30k-marian.toml --tokenizer "$OUT/tokenizer" \
    --data "$M/train" --eval "$M/val" "${LANGS[@]}" --out "$OUT" \
    --config recipes/multi30k-seq2seq.toml --label-smoothing 0.1 \
    $([ -d "$OUT/checkpoints" ] && echo --resume) "$@"
  echo "trained in $(( $(date +%s) - start )) s"
fi

echo "== step 3: test_2016_flickr (1,000 sentences), sacreBLEU"
for beams in 1 5; do
  echo "-- $beams beam(s)"
  "$TASKLM" "${T[@]}" eval --task translate --model "$OUT" --data "$M/test_2016_flickr" \
    "${LANGS[@]}" --num-beams "$beams" --batch-size 32 --predictions "$OUT/test-beams$beams.jsonl" --json
done
