#!/usr/bin/env python3
"""Builds multi-turn conversations from ../shared/data/instruct/t0_per_template for the chat
learning check: each conversation chains 2 or 3 T0 rows (user = prompt, assistant = completion
without T0's trailing <|endoftext|>). Every 5th template (sorted by name) is held out: held-out
conversations use only those templates, training ones never do. Standard library only.

    python3 scripts/data/t0_chat.py ../shared/data/instruct/t0_per_template \
        --train /tmp/chat_train.jsonl --eval /tmp/chat_eval.jsonl --train-convs 200 --eval-convs 60
"""
import argparse
import json
import pathlib
import random

END = "<|endoftext|>"


def rows_of(files, max_chars, rng, per):
    rows = []
    for f in files:
        lines = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
        lines = [r for r in lines if len(r["prompt"]) + len(r["completion"]) <= max_chars]
        rng.shuffle(lines)
        for r in lines[:per]:
            answer = r["completion"].removesuffix(END).strip()
            if answer:
                rows.append((r["prompt"].strip(), answer))
    rng.shuffle(rows)
    return rows


def conversations(rows, n, rng):
    out, i = [], 0
    while len(out) < n and i + 3 <= len(rows):
        k = rng.choice([2, 3])
        messages = []
        for prompt, answer in rows[i:i + k]:
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        out.append({"messages": messages})
        i += k
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--train", type=pathlib.Path, required=True)
    ap.add_argument("--eval", type=pathlib.Path, required=True)
    ap.add_argument("--train-convs", type=int, default=200)
    ap.add_argument("--eval-convs", type=int, default=60)
    ap.add_argument("--max-chars", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    files = sorted(a.dir.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"{a.dir}: no .jsonl files")
    held = [f for i, f in enumerate(files) if i % 5 == 4]
    seen = [f for i, f in enumerate(files) if i % 5 != 4]
    rng = random.Random(a.seed)
    for path, group, n in [(a.train, seen, a.train_convs), (a.eval, held, a.eval_convs)]:
        per = 2 * max(2, -(-3 * n // len(group)))  # twice the share: filtering thins some templates
        convs = conversations(rows_of(group, a.max_chars, rng, per), n, rng)
        with path.open("w") as out:
            for c in convs:
                out.write(json.dumps(c) + "\n")
        turns = sum(len(c["messages"]) // 2 for c in convs)
        print(f"{path}: {len(convs)} conversations, {turns} exchanges, from {len(group)} templates")


if __name__ == "__main__":
    main()
