#!/usr/bin/env python3
"""Proves a directory written by `tasklm train` is a Hugging Face model transformers loads.

Loads DIR with AutoModelForCausalLM and AutoTokenizer (f32), checks the tokenizer gives the ids
tasklm gives, then greedy-decodes a few tokens for fixed prompts in both and compares the
generated ids and each step's top-5 logprobs (log-softmax of the logits). Exits non-zero on a
mismatch beyond the tolerance.

  python scripts/golden/trained_dir.py --dir OUT --tasklm target/release/tasklm [--tol 1e-3]
"""
import argparse, json, subprocess, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from versions import print_versions

print_versions()

PROMPTS = [
    "The capital of France is",
    "Question: What is 12 plus 7?\nAnswer:",
    "Translate to German: The house is small.\n",
]

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--tasklm", required=True)
ap.add_argument("--new-tokens", type=int, default=4)
ap.add_argument("--tol", type=float, default=1e-3)
a = ap.parse_args()
torch.set_num_threads(2)
tok = AutoTokenizer.from_pretrained(a.dir)
model = AutoModelForCausalLM.from_pretrained(a.dir, dtype=torch.float32).eval()
worst, failures = 0.0, 0
for prompt in PROMPTS:
    out = subprocess.run(
        [a.tasklm, "generate", "--model", a.dir, "--prompt", prompt, "--json", "--temperature", "0",
         "--max-new-tokens", str(a.new_tokens), "--top-logprobs", "5"],
        check=True, capture_output=True, text=True)
    ours = json.loads(out.stdout.strip().splitlines()[-1])
    ids = tok(prompt, return_tensors="pt").input_ids
    if ids.shape[1] != ours["usage"]["prompt_tokens"]:
        print(f"{prompt!r}: {ids.shape[1]} prompt tokens in transformers, {ours['usage']['prompt_tokens']} in tasklm")
        failures += 1
    with torch.no_grad():
        for step, ours_step in enumerate(ours["logprobs"]["content"]):
            logp = torch.log_softmax(model(ids).logits[0, -1].double(), -1)
            top = torch.topk(logp, 5)
            theirs_ids = top.indices.tolist()
            ours_ids = [t["id"] for t in ours_step["top_logprobs"]]
            if theirs_ids[0] != ours_step["id"]:
                print(f"{prompt!r} step {step}: greedy id {ours_step['id']} vs transformers {theirs_ids[0]}")
                failures += 1
            for t in ours_step["top_logprobs"]:
                d = abs(t["logprob"] - logp[t["id"]].item())
                worst = max(worst, d)
            ids = torch.cat([ids, torch.tensor([[ours_step["id"]]])], 1)
    print(f"{prompt!r}: tasklm {ours['text']!r}")
print(f"max |logprob difference| over top-5 of every step: {worst:.2e} (tolerance {a.tol})")
if failures or worst > a.tol:
    sys.exit(1)
print("OK: transformers loads the directory and agrees with tasklm")
