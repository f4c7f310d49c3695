#!/usr/bin/env python3
"""PyTorch/transformers peer of `tasklm bench train`: the same token ids (a JSON file holding a
list of rows), the causal LM loss on every position, AdamW, gradient clipping at 1.0, f32,
`--threads` CPU threads. Times `--steps` updates after one warm-up update and prints one JSON
line: {"tokens_per_s": ..., "peak_rss_bytes": ...}.

  python scripts/peer/bench_train.py --model PATH(.gguf or HF dir) --ids ids.json --steps 3
"""
import argparse, json, os, time
import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--ids", required=True)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--lr", type=float, default=1e-5)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
if a.model.endswith(".gguf"):
    folder, name = os.path.split(os.path.abspath(a.model))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
model.train()
ids = torch.tensor(json.load(open(a.ids)))
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)


def step():
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


step()
t0 = time.perf_counter()
for _ in range(a.steps):
    step()
dt = time.perf_counter() - t0
tokens = ids.numel() * a.steps
# VmHWM, not ru_maxrss: a process started by another inherits its parent's ru_maxrss.
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"tokens_per_s": tokens / dt, "peak_rss_bytes": hwm_kb * 1024,
                  "torch": torch.__version__}))
