#!/usr/bin/env bash
# Issue 20's proofs with qwen2.5-coder-0.5b-instruct: LoRA (all linear layers, r 16) over the
# GGUF base kept quantized in memory (--quantized), scored before and after on records it did
# not train on. One task per call, or both:
#   recipes/qwen-coder-lora.sh code|reasoning|all [OUT_ROOT]
#   code       train: MBPP records 201-600; eval: MBPP records 1-80, tests run in python3 (pass@1)
#   reasoning  train: the first 1,000 rows of gsm8k/train; eval: its last 100 rows (final-number EM)
# Greedy decoding, 256 new tokens at most; 1 epoch, batch 4, AdamW lr 2e-4, cosine, 5% warmup.
# The base is scored dequantized to f32 (eval's default on a GGUF), the adapter over the
# quantized base it trained on (its tasklm.json says so), so the comparison favours the base.
# A step whose output exists is skipped; an interrupted training resumes from its checkpoint.
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores), PYTHON (default python3; slices the data files),
# LR (default 2e-4), EPOCHS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
TASK=${1:?usage: recipes/qwen-coder-lora.sh code|reasoning|all [OUT_ROOT]}
ROOT=${2:-/tmp/tasklm-qwen-coder-lora}
T=(${THREADS:+--threads "$THREADS"})
BASE=qwen2.5-coder-0.5b-instruct
S="$ROOT/slices"
mkdir -p "$S"
"${PYTHON:-python3}" - "$DATA" "$S" <<'PY'
import json, sys
data, out = sys.argv[1], sys.argv[2]
def jsonl(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]
def write(name, rows):
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
mbpp = jsonl(f"{data}/mbpp/mbxp_mbpp_release_v1.jsonl")
write("code_eval.jsonl", mbpp[:80])
write("code_train.jsonl", mbpp[200:600])
gsm = jsonl(f"{data}/gsm8k/train.jsonl")
write("reasoning_train.jsonl", gsm[:1000])
write("reasoning_eval.jsonl", gsm[-100:])
PY
score() {  # score MODEL EVAL PREDICTIONS
  [ -f "$3" ] && [ -f "$3.json" ] && { echo "(kept) $(cat "$3.json")"; return; }
  "$TASKLM" "${T[@]}" eval --task "$task" --model "$1" --data "$2" --max-new-tokens 256 \
    --predictions "$3" --json | tee "$3.json"
}
run() {
  task=$1
  local out="$ROOT/$task"
  echo "== $task: base model"
  score "$BASE" "$S/${task}_eval.jsonl" "$ROOT/$task.before.jsonl"
  echo "== $task: LoRA training -> $out"
  if [ -f "$out/adapter_model.safetensors" ]; then
    echo "(kept) $out holds a trained adapter (delete it to retrain)"
  else
    resume=()
    [ -d "$out/checkpoints" ] && resume=(--resume)
    /usr/bin/time -v "$TASKLM" "${T[@]}" train --task "$task" --model "$BASE" --data "$S/${task}_train.jsonl" \
      --out "$out" --lora --lora-targets all-linear --quantized \
      --epochs "${EPOCHS:-1}" --batch-size 4 --lr "${LR:-2e-4}" --warmup-ratio 0.05 --scheduler cosine \
      --max-seq-len 512 --save-every 20 --save-total-limit 1 "${resume[@]}" 2> >(tee "$out.train.err" >&2)
  fi
  echo "== $task: fine-tuned"
  score "$out" "$S/${task}_eval.jsonl" "$ROOT/$task.after.jsonl"
}
case $TASK in
  code|reasoning) run "$TASK" ;;
  all) run code; run reasoning ;;
  *) echo "unknown task $TASK (code, reasoning, all)" >&2; exit 2 ;;
esac
