#!/usr/bin/env python3
"""PyTorch/transformers peer of `recipes/minilm-sst2.sh`: the first 8,000 rows of
sst2/train.tsv, the same recipe (max length 64, batch 32, random batches padded per batch,
AdamW lr 1e-4 with weight decay 0.01 on matrices only (as tasklm: rank >= 2), linear schedule
with 6% warmup, clipping at 1.0, 2 epochs), `AutoModelForSequenceClassification` (pooler,
dropout 0.1, a fresh linear head) as tasklm's encoder classifier, accuracy on sst2/dev.tsv
before and after. Prints one JSON line each for the untrained and fine-tuned scores, then the
training wall time and tokens/s (tokens: each training row's length with [CLS] and [SEP], padding
left out, as tasklm's encoder runner counts them).

  python scripts/peer/sst2_minilm.py --model ~/.cache/tasklm/models/all-minilm-l6-v2 \
      --data ../shared/data/sst2 --threads 2 [--rows 8000 --epochs 2 --dev-limit N]

Run it right after `recipes/minilm-sst2.sh` on the same machine, with nothing else heavy
running, and compare the training wall times as a ratio.
"""
import argparse, csv, json, math, random, time
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", required=True, help="folder with train.tsv and dev.tsv")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rows", type=int, default=8000)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--dev-limit", type=int, default=None)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
random.seed(a.seed)
MAX_LEN, BATCH, LR, WD, WARMUP, CLIP = 64, 32, 1e-4, 0.01, 0.06, 1.0


def read(path, limit):
    with open(path, newline="") as f:
        rows = [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return rows[:limit] if limit else rows


train, dev = read(f"{a.data}/train.tsv", a.rows), read(f"{a.data}/dev.tsv", a.dev_limit)
tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=2, dtype=torch.float32)


def batch(rows):
    enc = tok([t for t, _ in rows], truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
    return enc, torch.tensor([l for _, l in rows])


@torch.no_grad()
def accuracy():
    model.eval()
    right = 0
    for i in range(0, len(dev), 64):
        enc, labels = batch(dev[i:i + 64])
        right += (model(**enc).logits.argmax(-1) == labels).sum().item()
    return right / len(dev)


print(json.dumps({"untrained_accuracy": accuracy(), "n": len(dev)}), flush=True)
decay = [p for p in model.parameters() if p.dim() >= 2]
rest = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}], lr=LR)
steps = a.epochs * math.ceil(len(train) / BATCH)
sched = get_linear_schedule_with_warmup(opt, math.ceil(WARMUP * steps), steps)
tokens, t0 = 0, time.perf_counter()
model.train()
for epoch in range(a.epochs):
    order = list(range(len(train)))
    random.shuffle(order)
    for i in range(0, len(order), BATCH):
        enc, labels = batch([train[j] for j in order[i:i + BATCH]])
        tokens += int(enc["attention_mask"].sum())
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
train_s = time.perf_counter() - t0
print(json.dumps({"accuracy": accuracy(), "n": len(dev)}), flush=True)
print(json.dumps({"train_s": round(train_s, 1), "tokens": tokens, "tokens_per_s": round(tokens / train_s, 1),
                  "steps": steps, "torch": torch.__version__, "threads": a.threads}))
