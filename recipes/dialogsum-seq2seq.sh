#!/usr/bin/env bash
# Summarization with an encoder-decoder trained from scratch (issue 16): DialogSum, a Unigram
# tokenizer on its dialogues and summaries, the small Marian-style model of
# recipes/dialogsum-marian.toml trained on all 12,460 training dialogues with label smoothing
# 0.1, the checkpoint chosen by ROUGE-L on dialogsum.dev, then ROUGE-1/2/L on all 500 dev
# dialogues and on the first 60 (the slice recipes/smollm2-generative.sh summarize scores the
# decoder-only fine-tune on). Interrupted runs resume from their last checkpoint.
# Usage: recipes/dialogsum-seq2seq.sh OUT_DIR [extra train flags]
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores), PYTHON (default python3; standard library only), ARCH (marian,
# the default, or t5) and MODEL_CONFIG (default recipes/dialogsum-$ARCH.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-python3}
OUT=${1:?usage: recipes/dialogsum-seq2seq.sh OUT_DIR [train flags]}
shift
T=(${THREADS:+--threads "$THREADS"})
ARCH=${ARCH:-marian}
MODEL_CONFIG=${MODEL_CONFIG:-recipes/dialogsum-$ARCH.toml}
D="$DATA/dialogsum"
mkdir -p "$OUT/data"

echo "== step 1: tokenizer -> $OUT/tokenizer"
if [ -f "$OUT/tokenizer/tokenizer.json" ]; then
  echo "kept (delete $OUT/tokenizer to retrain it)"
else
  "$PYTHON" - "$D/dialogsum.train.jsonl" "$OUT/data/corpus.txt" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        out.write(r["dialogue"] + "\n" + r["summary"] + "\n")
PY
  "$TASKLM" "${T[@]}" tokenizer train --data "$OUT/data/corpus.txt" --vocab-size 8000 \
    --kind unigram --out "$OUT/tokenizer"
fi
head -n 60 "$D/dialogsum.dev.jsonl" > "$OUT/data/dev60.jsonl"

echo "== step 2: train from scratch -> $OUT"
if [ -f "$OUT/model.safetensors" ]; then
  echo "$OUT already holds a trained model: kept (delete it to retrain)"
else
  start=$(date +%s)
  "$TASKLM" "${T[@]}" train --task summarize --arch "$ARCH" \
    --model-config "$MODEL_CONFIG" --tokenizer "$OUT/tokenizer" \
    --data "$D/dialogsum.train.jsonl" --eval "$D/dialogsum.dev.jsonl" --out "$OUT" \
    --config recipes/dialogsum-seq2seq.toml --label-smoothing 0.1 --max-seq-len 512 \
    $([ -d "$OUT/checkpoints" ] && echo --resume) "$@"
  echo "trained in $(( $(date +%s) - start )) s"
fi

echo "== step 3: ROUGE on dialogsum.dev (500) and its first 60"
for data in "$D/dialogsum.dev.jsonl" "$OUT/data/dev60.jsonl"; do
  echo "-- $data"
  "$TASKLM" "${T[@]}" eval --task summarize --model "$OUT" --data "$data" --batch-size 16 \
    --predictions "$OUT/$(basename "$data" .jsonl).predictions.jsonl" --json
done
