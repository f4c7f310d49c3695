#!/usr/bin/env python3
"""PyTorch/transformers peer of `tasklm bench generate`: the same prompt ids, greedy decoding of
a fixed number of new tokens (EOS ignored), f32, median of several runs. Prints one JSON line:
{"prefill_tokens_per_s": ..., "decode_tokens_per_s": ...}.

  python scripts/peer/bench_generate.py --model PATH(.gguf or HF dir) --prompt-ids 1,2,3 \
      --new-tokens 128 --runs 5 --threads 2
"""
import argparse, json, os, statistics, time
import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--prompt-ids", required=True)
ap.add_argument("--new-tokens", type=int, default=128)
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
if a.model.endswith(".gguf"):
    folder, name = os.path.split(os.path.abspath(a.model))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
model.eval()
ids = torch.tensor([[int(x) for x in a.prompt_ids.split(",")]])

prefill, decode = [], []
with torch.inference_mode():
    for run in range(a.runs + 1):  # the first run warms up
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        t1 = time.perf_counter()
        for _ in range(a.new_tokens - 1):
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
        if run > 0:
            prefill.append(ids.shape[1] / (t1 - t0))
            decode.append((a.new_tokens - 1) / (t2 - t1))
print(json.dumps({"prefill_tokens_per_s": statistics.median(prefill),
                  "decode_tokens_per_s": statistics.median(decode),
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
