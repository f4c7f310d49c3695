#!/usr/bin/env bash
# Issue 7's proofs: smollm2-135m-instruct scored before and after fine-tuning on a slice of
# each task's train data, on records it did not train on. One task per call, or all:
#   recipes/smollm2-generative.sh translate|summarize|genqa|code|reasoning|all [OUT_ROOT]
#   translate  train: first 600 pairs of multi30k/train.{en,de}; eval: first 100 of test_2016_flickr (BLEU, chrF)
#   summarize  train: first 120 dialogues of dialogsum.train; eval: first 60 of dialogsum.dev (ROUGE)
#   genqa      train: every 50th question of squad/train.json's first 35 articles (159);
#              eval: first 120 questions of the last 3 articles (EM, F1)
#   code       train: MBPP records 201-400; eval: MBPP records 1-80, tests run in python3 (pass@1)
#   reasoning  train: first 500 rows of gsm8k/train; eval: its last 100 rows (final-number EM)
# Greedy decoding; 1 epoch, AdamW lr 1e-4, cosine schedule, 5% warmup.
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores), PYTHON (default python3; slices the data files).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
TASK=${1:?usage: recipes/smollm2-generative.sh translate|summarize|genqa|code|reasoning|all [OUT_ROOT]}
ROOT=${2:-/tmp/tasklm-smollm2-generative}
T=(${THREADS:+--threads "$THREADS"})
BASE=smollm2-135m-instruct
S="$ROOT/slices"
mkdir -p "$S"
"${PYTHON:-python3}" - "$DATA" "$S" <<'PY'
import gzip, json, sys
data, out = sys.argv[1], sys.argv[2]
def head(path, n):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line for _, line in zip(range(n), f)]
def jsonl(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]
def write(name, rows):
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.writelines(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows)
for lang in ("en", "de"):
    write(f"mt_train.{lang}", head(f"{data}/multi30k/train.{lang}.gz", 600))
write("sum_train.jsonl", head(f"{data}/dialogsum/dialogsum.train.jsonl", 120))
articles = json.load(open(f"{data}/squad/train.json", encoding="utf-8"))["data"]
json.dump({"data": articles[35:]}, open(f"{out}/qa_heldout.json", "w", encoding="utf-8"))
qs = [{"id": q["id"], "context": p["context"], "question": q["question"], "answer": q["answers"][0]["text"]}
      for a in articles[:35] for p in a["paragraphs"] for q in p["qas"]]
write("qa_train.jsonl", qs[::50][:160])
mbpp = jsonl(f"{data}/mbpp/mbxp_mbpp_release_v1.jsonl")
write("code_eval.jsonl", mbpp[:80])
write("code_train.jsonl", mbpp[200:400])
gsm = jsonl(f"{data}/gsm8k/train.jsonl")
write("gsm_train.jsonl", gsm[:500])
write("gsm_eval.jsonl", gsm[-100:])
PY
# before_after TASK TRAIN EVAL [flags shared by train and eval] -- [eval-only flags]
before_after() {
  local task=$1 train=$2 eval=$3; shift 3
  local shared=() only=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do shared+=("$1"); shift; done
  [ $# -gt 0 ] && shift && only=("$@")
  local out="$ROOT/$task"
  echo "== $task: base model"
  "$TASKLM" "${T[@]}" eval --task "$task" --model "$BASE" --data "$eval" "${shared[@]}" "${only[@]}" \
    --predictions "$ROOT/$task.before.jsonl" --json
  "$TASKLM" "${T[@]}" train --task "$task" --model "$BASE" --data "$train" --out "$out" "${shared[@]}" \
    --epochs 1 --batch-size "${BATCH:-4}" --lr 1e-4 --warmup-ratio 0.05 --scheduler cosine \
    --max-seq-len 512 --save-total-limit 1
  echo "== $task: fine-tuned"
  "$TASKLM" "${T[@]}" eval --task "$task" --model "$out" --data "$eval" "${shared[@]}" "${only[@]}" \
    --predictions "$ROOT/$task.after.jsonl" --json
}
run() {
  case $1 in
    translate) BATCH=8 before_after translate "$S/mt_train" "$DATA/multi30k/test_2016_flickr" \
      --src-lang en --tgt-lang de -- --limit 100 --max-new-tokens 64 ;;
    summarize) before_after summarize "$S/sum_train.jsonl" "$DATA/dialogsum/dialogsum.dev.jsonl" \
      -- --limit 60 --max-new-tokens 96 ;;
    genqa) before_after genqa "$S/qa_train.jsonl" "$S/qa_heldout.json" -- --limit 120 ;;
    code) before_after code "$S/code_train.jsonl" "$S/code_eval.jsonl" -- --max-new-tokens 256 ;;
    reasoning) before_after reasoning "$S/gsm_train.jsonl" "$S/gsm_eval.jsonl" -- --max-new-tokens 256 ;;
    *) echo "unknown task $1 (translate, summarize, genqa, code, reasoning, all)" >&2; exit 2 ;;
  esac
}
if [ "$TASK" = all ]; then
  for t in translate summarize genqa code reasoning; do run "$t"; done
else
  run "$TASK"
fi
