#!/usr/bin/env bash
# Visual question answering on easy-VQA (issue 18): training images 0-3499 and their questions
# train, images 3500-3999 and theirs are the dev set.
#   step 1  split -> OUT/data: train.json and dev.json (easy-VQA triples), and each image's
#           colour and shape as read from its questions (tower_train.jsonl, tower_dev.jsonl:
#           {"image", "label": "red circle"}; images whose questions do not tell both are left
#           out of the tower's data)
#   step 2  the vision tower: recipes/easy-vqa-vit.json (a 4-layer, 128-wide ViT, 64x64 images
#           in 8x8 patches) trained from scratch by --task image-classify on those labels
#           (recipes/easy-vqa-tower.toml) -> OUT/tower, its dev accuracy printed
#   step 3  the LLaVA, stage 1: the tower's last layer with [CLS] (65 features, the class in
#           [CLS]), a fresh projector, smollm2-135m-instruct frozen; only the projector trains,
#           on STAGE1_STEPS updates of BATCH sequences of up to PER_IMAGE questions about one
#           image (turns; with SEE_EARLIER=1, the default, the turns of stages 1 and 2 see
#           the earlier ones, one conversation, as the reported run trained them; stage 3's
#           turns each see the image and themselves only) -> OUT/stage1
#   step 4  stage 2: projector, decoder (and the tower with TRAIN_VISION=1) train on
#           STAGE2_STEPS more updates -> OUT/stage2
#           (-> OUT when STAGE3_STEPS is 0)
#   step 4b stage 3: the same parts train on STAGE3_STEPS more updates from stage 2's model
#           (a second cosine cycle from lr 1e-4, another shuffle) -> OUT
#   step 5  dev accuracy (per question type, majority baseline) with the closed set of
#           answers.txt on the first EVAL_LIMIT dev questions (all when empty), and of free
#           generation on the first GEN_LIMIT
# Usage: recipes/easy-vqa.sh OUT_DIR
# Environment: TASKLM (binary, default target/release/tasklm), DATA (default ../shared/data),
# THREADS (default: all cores), PYTHON (default python3; standard library only),
# STAGE1_STEPS (40), STAGE2_STEPS (220), STAGE3_STEPS (450), BATCH (8), PER_IMAGE (10),
# EVAL_LIMIT (empty: all), GEN_LIMIT (300), TRAIN_VISION (1, empty: the tower stays as step 2
# left it), SEE_EARLIER (1; empty: separate turns in every stage, not yet measured).
set -euo pipefail
cd "$(dirname "$0")/.."
TASKLM=${TASKLM:-target/release/tasklm}
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-python3}
OUT=${1:?usage: recipes/easy-vqa.sh OUT_DIR}
T=(${THREADS:+--threads "$THREADS"})
STAGE1_STEPS=${STAGE1_STEPS:-40}
STAGE2_STEPS=${STAGE2_STEPS:-220}
STAGE3_STEPS=${STAGE3_STEPS:-450}
BATCH=${BATCH:-8}
PER_IMAGE=${PER_IMAGE:-10}
EVAL_LIMIT=${EVAL_LIMIT:-}
GEN_LIMIT=${GEN_LIMIT:-300}
TRAIN_VISION=${TRAIN_VISION-1}
SEE_EARLIER=${SEE_EARLIER-1}
E="$DATA/easy_vqa/train"
IMAGES="$E/images"
mkdir -p "$OUT/data"

echo "== step 1: split (images 0-3499 train, 3500-3999 dev) and the tower's labels"
"$PYTHON" - "$E" "$OUT/data" <<'PY'
import json, os, re, sys
src, out = sys.argv[1], sys.argv[2]
SHAPES = {"circle", "rectangle", "triangle"}
COLOURS = {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"}

def facts(question, answer):
    """What a question and its answer say of the image's shape and colour."""
    words = re.findall(r"[a-z]+", question.lower())
    c = [w for w in words if w in COLOURS]
    s = [w for w in words if w in SHAPES]
    if answer in SHAPES or answer in COLOURS:
        present = True
    else:  # yes/no: the named colour/shape is there when yes, unless the question negates
        negated = "not" in words or "no" in words[:3]
        present = (answer == "yes") != negated
    out = {}
    if present:
        if c: out["colour"] = c[0]
        if s: out["shape"] = s[0]
    if answer in SHAPES: out["shape"] = answer
    if answer in COLOURS: out["colour"] = answer
    return out

q = json.load(open(os.path.join(src, "questions.json")))
known = {}
for question, answer, i in q:
    for k, v in facts(question, answer).items():
        known.setdefault(i, {}).setdefault(k, set()).add(v)
for name, keep in [("train", lambda i: i < 3500), ("dev", lambda i: i >= 3500)]:
    part = [t for t in q if keep(t[2])]
    json.dump(part, open(os.path.join(out, f"{name}.json"), "w"))
    rows = 0
    with open(os.path.join(out, f"tower_{name}.jsonl"), "w") as f:
        for i in sorted({t[2] for t in part}):
            k = known.get(i, {})
            if len(k.get("colour", ())) == 1 and len(k.get("shape", ())) == 1:
                label = f"{next(iter(k['colour']))} {next(iter(k['shape']))}"
                image = os.path.abspath(os.path.join(src, "images", f"{i}.png"))
                f.write(json.dumps({"image": image, "label": label}) + "\n")
                rows += 1
    print(f"{name}: {len(part)} questions; {rows} images with a colour and a shape for the tower")
PY

echo "== step 2: the vision tower -> $OUT/tower"
if [ -f "$OUT/tower/model.safetensors" ]; then
  echo "kept (delete $OUT/tower to retrain it)"
else
  "$TASKLM" "${T[@]}" train --task image-classify --model recipes/easy-vqa-vit.json \
    --data "$OUT/data/tower_train.jsonl" --eval "$OUT/data/tower_dev.jsonl" \
    --out "$OUT/tower" --config recipes/easy-vqa-tower.toml \
    $([ -d "$OUT/tower/checkpoints" ] && echo --resume)
fi
"$TASKLM" "${T[@]}" eval --task image-classify --model "$OUT/tower" \
  --data "$OUT/data/tower_dev.jsonl" --json

# vqa_train DIR FLAGS...: one stage, resumed when interrupted, kept when done.
vqa_train() {
  local dir=$1
  shift
  if [ -f "$dir/model.safetensors" ]; then
    echo "kept (delete $dir to retrain it)"
    return
  fi
  start=$(date +%s)
  "$TASKLM" "${T[@]}" train --task vqa --data "$OUT/data/train.json" --images "$IMAGES" \
    --out "$dir" --epochs 1 --batch-size "$BATCH" --questions-per-image "$PER_IMAGE" \
    --warmup-ratio 0.05 --scheduler cosine --save-every 10 --save-total-limit 1 \
    $([ -d "$dir/checkpoints" ] && echo --resume) "$@"
  echo "trained in $(( $(date +%s) - start )) s"
}

echo "== step 3: stage 1, the projector alone -> $OUT/stage1"
vqa_train "$OUT/stage1" --model smollm2-135m-instruct --vision "$OUT/tower" \
  --vision-feature-layer -1 --vision-feature-select full ${SEE_EARLIER:+--turns-see-earlier} \
  --max-steps "$STAGE1_STEPS" --lr 1e-3

STAGE2_OUT=$OUT
[ "$STAGE3_STEPS" -gt 0 ] && STAGE2_OUT=$OUT/stage2
echo "== step 4: stage 2, projector and decoder -> $STAGE2_OUT"
vqa_train "$STAGE2_OUT" --model "$OUT/stage1" --train-lm ${TRAIN_VISION:+--train-vision} \
  ${SEE_EARLIER:+--turns-see-earlier} --max-steps "$STAGE2_STEPS" --lr 1e-4 --seed 43

if [ "$STAGE3_STEPS" -gt 0 ]; then
  echo "== step 4b: stage 3, $STAGE3_STEPS more updates -> $OUT"
  vqa_train "$OUT" --model "$STAGE2_OUT" --train-lm ${TRAIN_VISION:+--train-vision} \
    --max-steps "$STAGE3_STEPS" --lr 1e-4 --seed 44
fi

echo "== step 5: dev accuracy"
L=(${EVAL_LIMIT:+--limit "$EVAL_LIMIT"})
"$TASKLM" "${T[@]}" eval --task vqa --model "$OUT" --data "$OUT/data/dev.json" --images "$IMAGES" \
  --labels "$DATA/easy_vqa/answers.txt" "${L[@]}" --predictions "$OUT/dev.labels.jsonl" --json
"$TASKLM" "${T[@]}" eval --task vqa --model "$OUT" --data "$OUT/data/dev.json" --images "$IMAGES" \
  --limit "$GEN_LIMIT" --predictions "$OUT/dev.generated.jsonl" --json
