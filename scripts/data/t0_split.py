#!/usr/bin/env python3
"""Splits ../shared/data/instruct/t0_per_template by template for the SFT proof run.

Every 5th template (sorted by name) is held out: its rows never appear in training, so the
evaluation measures instruction following on prompts the model has not seen. Rows are drawn
with a fixed seed, the same number from each template. Standard library only; writes
TRAIN and EVAL as {prompt, completion} JSONL.

    python3 scripts/data/t0_split.py ../shared/data/instruct/t0_per_template \
        --train /tmp/t0_train.jsonl --eval /tmp/t0_eval.jsonl --train-rows 2000 --eval-rows 300
"""
import argparse
import json
import pathlib
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--train", type=pathlib.Path, required=True)
    ap.add_argument("--eval", type=pathlib.Path, required=True)
    ap.add_argument("--train-rows", type=int, default=2000)
    ap.add_argument("--eval-rows", type=int, default=300)
    ap.add_argument("--max-chars", type=int, default=1200,
                    help="skip rows whose prompt+completion is longer (keeps sequences short on CPU)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    files = sorted(a.dir.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"{a.dir}: no .jsonl files")
    held = [f for i, f in enumerate(files) if i % 5 == 4]
    seen = [f for i, f in enumerate(files) if i % 5 != 4]
    rng = random.Random(a.seed)

    def draw(group, total):
        per = 2 * max(1, -(-total // len(group)))  # twice the share: some templates run short
        rows = []
        for f in group:
            lines = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
            lines = [r for r in lines if len(r["prompt"]) + len(r["completion"]) <= a.max_chars
                     and r["completion"].strip()]
            rng.shuffle(lines)
            rows += lines[:per]
        rng.shuffle(rows)
        return rows[:total]

    for path, group, n in [(a.train, seen, a.train_rows), (a.eval, held, a.eval_rows)]:
        rows = draw(group, n)
        with path.open("w") as out:
            for r in rows:
                out.write(json.dumps({"prompt": r["prompt"], "completion": r["completion"]}) + "\n")
        print(f"{path}: {len(rows)} rows from {len(group)} templates")


if __name__ == "__main__":
    main()
