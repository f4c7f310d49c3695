#!/usr/bin/env python3
"""Golden fixtures for the optimizer and schedules, from PyTorch/transformers.

Writes tests/fixtures/adamw.safetensors (parameters before and after each of 3 AdamW steps with
fixed gradients, a matrix with weight decay and a vector without; the gradients are clipped to a
global norm first) and tests/fixtures/schedules.json (learning-rate multipliers of transformers'
linear and cosine schedules with warmup).

  python scripts/golden/optim.py
"""
import json, math, os
import torch
from safetensors.torch import save_file
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup
from versions import print_versions

print_versions('safetensors')

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tests", "fixtures")
torch.manual_seed(0)
w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
b = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
out = {"w.0": w.detach().clone(), "b.0": b.detach().clone()}
opt = torch.optim.AdamW([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
                        lr=0.01, betas=(0.9, 0.999), eps=1e-8)
for step in range(1, 4):
    gw, gb = torch.randn(4, 3, dtype=torch.float64) * step, torch.randn(3, dtype=torch.float64)
    out[f"gw.{step}"], out[f"gb.{step}"] = gw.clone(), gb.clone()
    w.grad, b.grad = gw.clone(), gb.clone()
    norm = torch.nn.utils.clip_grad_norm_([w, b], max_norm=1.0)
    out[f"norm.{step}"] = norm.reshape(1).clone()
    opt.step()
    out[f"w.{step}"], out[f"b.{step}"] = w.detach().clone(), b.detach().clone()
save_file(out, os.path.join(FIX, "adamw.safetensors"))

p = torch.nn.Parameter(torch.zeros(1))
sched = {}
for name, make in [("linear", get_linear_schedule_with_warmup), ("cosine", get_cosine_schedule_with_warmup)]:
    o = torch.optim.SGD([p], lr=1.0)
    s = make(o, num_warmup_steps=3, num_training_steps=10)
    vals = []
    for _ in range(11):
        vals.append(o.param_groups[0]["lr"])
        o.step(); s.step()
    sched[name] = vals
with open(os.path.join(FIX, "schedules.json"), "w") as f:
    json.dump({"warmup": 3, "total": 10, **sched}, f, indent=1)
print("wrote adamw.safetensors and schedules.json")
