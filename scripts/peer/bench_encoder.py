#!/usr/bin/env python3
"""PyTorch/transformers peer of `tasklm bench encoder`: the same rows (a JSON file with
`ids`, `labels`), AutoModelForSequenceClassification over the encoder, f32, `--threads` CPU
threads. Times `--steps` training updates (cross-entropy, AdamW, clipping at 1.0) after one
warm-up (their mean), then `--infer-passes` inference passes (eval mode, no grad) after two
warm-up passes (their median), as tasklm does, and prints one JSON line:
{"train_tokens_per_s": ..., "infer_sentences_per_s": ..., "peak_rss_bytes": ...}.

  python scripts/peer/bench_encoder.py --model DIR --rows rows.json --steps 3
"""
import argparse, json, time
import torch
from transformers import AutoModelForSequenceClassification

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--rows", required=True)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--infer-passes", type=int, default=30)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--labels", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
rows = json.load(open(a.rows))
ids = torch.tensor(rows["ids"])
labels = torch.tensor(rows["labels"])
model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=a.labels,
                                                           dtype=torch.float32)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
mask = torch.ones_like(ids)


def update():
    model.train()
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


update()
t0 = time.perf_counter()
for _ in range(a.steps):
    update()
train_dt = time.perf_counter() - t0
model.eval()
passes = []
with torch.no_grad():
    for i in range(a.infer_passes + 2):
        t0 = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        if i >= 2:
            passes.append(time.perf_counter() - t0)
passes.sort()
n = len(passes)
infer_dt = passes[n // 2] if n % 2 else (passes[n // 2 - 1] + passes[n // 2]) / 2
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"train_tokens_per_s": ids.numel() * a.steps / train_dt,
                  "infer_sentences_per_s": ids.shape[0] / infer_dt,
                  "peak_rss_bytes": hwm_kb * 1024, "torch": torch.__version__}))
